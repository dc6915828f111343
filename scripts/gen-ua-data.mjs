#!/usr/bin/env node
// gen-ua-data.mjs -- turns the pinned npm packages uap-core and crawler-user-agents
// into collector/ua_data.inc, the rule tables collector/ua.c compiles with PCRE2.
//
// Run it through `make ua-data` after bumping either package in package.json.
// The output is committed so that a C build needs neither node nor npm.
//
// regexes.yaml uses a small, regular subset of YAML (lists of maps whose values
// are all single-quoted strings). The reader below accepts exactly that subset
// and stops with the line number on anything else, so a format change upstream
// fails the regeneration instead of silently dropping rules.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mod = (p) => join(root, 'node_modules', p);
const out = process.argv[2] || join(root, 'collector', 'ua_data.inc');

function die(msg) {
    process.stderr.write(`gen-ua-data: ${msg}\n`);
    process.exit(1);
}

// One single-quoted YAML scalar starting at s[i] == "'"; returns [value, next index].
function singleQuoted(s, i, where) {
    let v = '';
    for (i++; i < s.length; i++) {
        if (s[i] !== "'") { v += s[i]; continue; }
        if (s[i + 1] === "'") { v += "'"; i++; continue; }
        return [v, i + 1];
    }
    die(`${where}: unterminated quoted string`);
}

function parseUapYaml(text, file) {
    const doc = {};
    let list = null, entry = null;
    text.split('\n').forEach((raw, n) => {
        const where = `${file}:${n + 1}`;
        const line = raw.replace(/\r$/, '');
        if (/^\s*(#.*)?$/.test(line)) return;
        let m;
        if ((m = /^([A-Za-z_]+):\s*$/.exec(line))) {
            list = doc[m[1]] = [];
            entry = null;
            return;
        }
        if (!(m = /^( {2}- | {4})([a-z0-9_]+): (?=')/.exec(line)) || !list)
            die(`${where}: unexpected line: ${line}`);
        const [value, end] = singleQuoted(line, m[0].length, where);
        if (!/^\s*(#.*)?$/.test(line.slice(end)))
            die(`${where}: trailing text after value`);
        if (m[1] === '  - ') {
            if (m[2] !== 'regex') die(`${where}: list item must start with regex`);
            entry = {};
            list.push(entry);
        } else if (!entry) {
            die(`${where}: key outside a list item`);
        }
        if (m[2] in entry) die(`${where}: duplicate key ${m[2]}`);
        entry[m[2]] = value;
    });
    return doc;
}

// A C string literal. Bytes outside printable ASCII become octal escapes (UTF-8
// kept byte for byte); '?' after '?' is escaped so that no trigraph forms.
function cstr(s) {
    if (s === undefined || s === null) return 'NULL';
    let r = '"', prev = '';
    for (const b of Buffer.from(s, 'utf8')) {
        const c = String.fromCharCode(b);
        if (c === '\\' || c === '"') r += '\\' + c;
        else if (c === '?' && prev === '?') r += '\\?';
        else if (b >= 0x20 && b < 0x7f) r += c;
        else r += '\\' + b.toString(8).padStart(3, '0');
        prev = c;
    }
    return r + '"';
}

function flagOf(e, where) {
    if (e.regex_flag === undefined) return 0;
    if (e.regex_flag === 'i') return 1;
    die(`${where}: unknown regex_flag ${e.regex_flag}`);
}

const uapFile = mod('uap-core/regexes.yaml');
const uapPkg = JSON.parse(readFileSync(mod('uap-core/package.json'), 'utf8'));
const cuaFile = mod('crawler-user-agents/crawler-user-agents.json');
const cuaPkg = JSON.parse(readFileSync(mod('crawler-user-agents/package.json'), 'utf8'));

const uap = parseUapYaml(readFileSync(uapFile, 'utf8'), 'uap-core/regexes.yaml');
for (const k of ['user_agent_parsers', 'os_parsers', 'device_parsers'])
    if (!uap[k] || uap[k].length === 0) die(`regexes.yaml: no ${k}`);

// Only a rule's spider verdict matters for the device list, and rules after the
// last Spider rule can never change it, so the table stops there.
const dev = uap.device_parsers;
let lastSpider = -1;
dev.forEach((e, i) => { if (e.device_replacement === 'Spider') lastSpider = i; });
if (lastSpider < 0) die('regexes.yaml: no Spider device rule');
const devRules = dev.slice(0, lastSpider + 1);

// Prefilter: any Spider rule matching, in one pattern. Case-insensitive rules keep
// their flag through an inline (?i:...) group.
const spiderAlt = devRules
    .filter((e) => e.device_replacement === 'Spider')
    .map((e, i) => (flagOf(e, `spider rule ${i}`) ? `(?i:${e.regex})` : `(?:${e.regex})`))
    .join('|');

const crawlers = JSON.parse(readFileSync(cuaFile, 'utf8'));
if (!Array.isArray(crawlers) || crawlers.length === 0) die('crawler-user-agents.json: no entries');
crawlers.forEach((c, i) => {
    if (typeof c.pattern !== 'string' || c.pattern === '') die(`crawler entry ${i}: no pattern`);
});

// True when p has a '|' outside any group or character class.
function hasTopLevelAlt(p) {
    let depth = 0, inClass = false;
    for (let i = 0; i < p.length; i++) {
        const c = p[i];
        if (c === '\\') { i++; continue; }
        if (inClass) { if (c === ']') inClass = false; continue; }
        if (c === '[') {
            inClass = true;
            if (p[i + 1] === '^') i++;
            if (p[i + 1] === ']') i++;
        } else if (c === '(') depth++;
        else if (c === ')') depth--;
        else if (c === '|' && depth === 0) return true;
    }
    return false;
}

// A backtracking engine tries each of the ~1500 alternatives at every position
// of the subject, which made this one regex cost more than all the uap rules
// together. Grouping the patterns that start with the same plain character,
// c(?:rest1|rest2|...), lets a position fail after one test per group instead.
// Only patterns where that rewrite is exact are grouped: first character a
// letter, digit or space, not followed by a quantifier, no top-level '|', no
// \Q...\E or POSIX class that the scanner above does not model.
function factorCrawlers(patterns) {
    const groups = new Map(), rest = [];
    for (const p of patterns) {
        if (/^[A-Za-z0-9 ]/.test(p) && !/^.[*+?{]/.test(p) && !hasTopLevelAlt(p) &&
            !p.includes('\\Q') && !p.includes('[[:')) {
            if (!groups.has(p[0])) groups.set(p[0], []);
            groups.get(p[0]).push(p.slice(1));
        } else {
            rest.push(p);
        }
    }
    const alts = [...groups.keys()].sort().map((c) => {
        const tails = groups.get(c);
        return tails.length === 1 ? `(?:${c}${tails[0]})` : `${c}(?:${tails.join('|')})`;
    });
    return alts.concat(rest.map((p) => `(?:${p})`));
}

const crawlerAlt = factorCrawlers(crawlers.map((c) => c.pattern));

// The rewrite must not change what matches: check it on every example User-Agent
// the list ships, with JavaScript's engine (close enough to PCRE2 for these
// patterns that both forms compile; if one does not, the check is skipped).
{
    let plain = null, factored = null;
    try {
        plain = new RegExp(crawlers.map((c) => `(?:${c.pattern})`).join('|'));
        factored = new RegExp(crawlerAlt.join('|'));
    } catch (e) {
        process.stderr.write(`gen-ua-data: warning: rewrite not checked: ${e.message}\n`);
    }
    if (plain && factored) {
        let n = 0;
        for (const c of crawlers)
            for (const s of c.instances || []) {
                n++;
                if (plain.test(s) !== factored.test(s)) die(`crawler rewrite changes the answer for: ${s}`);
            }
        if (n === 0) die('crawler-user-agents.json: no instances to check the rewrite with');
    }
}

const L = [];
L.push('/* ua_data.inc -- GENERATED FILE, DO NOT EDIT. Rule tables for ua.c.');
L.push(' *');
L.push(` * Generated by scripts/gen-ua-data.mjs from the npm packages uap-core ${uapPkg.version}`);
L.push(` * (regexes.yaml, Apache-2.0) and crawler-user-agents ${cuaPkg.version} (MIT), both`);
L.push(' * pinned in package.json. To regenerate: npm ci && make ua-data');
L.push(' */');
L.push('');
L.push(`#define UA_DATA_UAP_CORE_VERSION ${cstr(uapPkg.version)}`);
L.push(`#define UA_DATA_CRAWLERS_VERSION ${cstr(cuaPkg.version)}`);
L.push('');
L.push('/* uap-core user_agent_parsers, in order: regex, caseless, family_replacement. */');
L.push('static const struct ua_rule ua_data_browser[] = {');
uap.user_agent_parsers.forEach((e, i) =>
    L.push(`    { ${cstr(e.regex)}, ${flagOf(e, `ua rule ${i}`)}, ${cstr(e.family_replacement)} },`));
L.push('};');
L.push('');
L.push('/* uap-core os_parsers, in order: regex, caseless, os_replacement. */');
L.push('static const struct ua_rule ua_data_os[] = {');
uap.os_parsers.forEach((e, i) =>
    L.push(`    { ${cstr(e.regex)}, ${flagOf(e, `os rule ${i}`)}, ${cstr(e.os_replacement)} },`));
L.push('};');
L.push('');
L.push('/* uap-core device_parsers up to the last Spider rule, in order: regex, caseless,');
L.push(' * and "Spider" when the rule names the device family Spider (else NULL). */');
L.push('static const struct ua_rule ua_data_device[] = {');
devRules.forEach((e, i) =>
    L.push(`    { ${cstr(e.regex)}, ${flagOf(e, `device rule ${i}`)}, ${e.device_replacement === 'Spider' ? '"Spider"' : 'NULL'} },`));
L.push('};');
L.push('');
L.push('/* Every uap-core Spider device rule as one alternation: a cheap "could be a spider". */');
L.push(`static const char ua_data_spider_any[] = ${cstr(spiderAlt)};`);
L.push('');
L.push(`/* The ${crawlers.length} crawler-user-agents patterns as one alternation. */`);
L.push('static const char ua_data_crawlers[] =');
crawlerAlt.forEach((p, i) => L.push(`    ${cstr(i ? '|' + p : p)}${i === crawlerAlt.length - 1 ? ';' : ''}`));
L.push('');

const tmp = out + '.tmp';
writeFileSync(tmp, L.join('\n'));
renameSync(tmp, out);
process.stdout.write(`gen-ua-data: ${out}: ${uap.user_agent_parsers.length} browser, ` +
    `${uap.os_parsers.length} os, ${devRules.length} device rules, ${crawlers.length} crawler patterns\n`);
