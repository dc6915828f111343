/* embed.c -- build tool: embeds any file (a web page, a template) in C.
 *
 *   embed SYMBOL FILE > OUT.c
 *
 * Writes `const char SYMBOL[]` holding the file's bytes (NUL-terminated, so
 * a text file can be used as a C string) and `const size_t SYMBOL_len`, its
 * length without that NUL. The program declares both in one of its headers
 * (aggregator/web.h for the dashboard). The rule is common/build.mk's
 * embed_file; the generated file is build output, never committed.
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: embed SYMBOL FILE > OUT.c\n", stderr);
        return 2;
    }
    FILE *in = fopen(argv[2], "rb");
    if (!in) {
        perror(argv[2]);
        return 1;
    }
    printf("/* %s, embedded by common/gen/embed.c: do not edit. */\n#include <stddef.h>\n\n", argv[2]);
    printf("extern const char %s[];\nextern const size_t %s_len;\n\n", argv[1], argv[1]);
    printf("const char %s[] =\n\"", argv[1]);
    size_t len = 0;
    int c;
    /* Octal escapes are always three digits, so a digit after one cannot
     * extend it; a line of the literal per line of the file keeps it readable. */
    while ((c = getc(in)) != EOF) {
        len++;
        if (c == '\\' || c == '"') printf("\\%c", c);
        else if (c == '\n') printf("\\n\"\n\"");
        else if (c == '?') printf("\\?");       /* no trigraphs */
        else if (c < 0x20 || c >= 0x7f) printf("\\%03o", c);
        else putchar(c);
    }
    if (ferror(in)) {
        perror(argv[2]);
        return 1;
    }
    fclose(in);
    printf("\";\nconst size_t %s_len = %zu;\n", argv[1], len);
    return ferror(stdout) ? 1 : 0;
}
