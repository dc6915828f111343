# common/build.mk -- Lua scripts and files embedded at build time; included by the
# top Makefile.
#
# A script lives beside its C side as DIR/NAME.lua; DIR/NAME.h lists the
# constants the two share (NAME_LUA_INTS(X), NAME_LUA_STRINGS(X), see
# common/gen/luagen.c). The build turns the script into $(BUILD)/gen/NAME_lua.c,
# defining the string SYMBOL, whose object joins the library of DIR's program.
#
#   $(call lua_script,DIR/NAME,SYMBOL,PREFIX,LIBRARY_OBJECT_LIST)

define lua_script
$(BUILD)/gen/luagen-$(notdir $(1)): common/gen/luagen.c $(1).h $(BUILD)/flags
	@mkdir -p $$(@D)
	$$(CC) -std=c11 $$(WARNINGS) -D_GNU_SOURCE -Icommon -I$(dir $(1)) \
	    -DLUAGEN_HEADER='"$(notdir $(1)).h"' -DLUAGEN_PREFIX=$(3) -MMD -MP -o $$@ common/gen/luagen.c

$(BUILD)/gen/$(notdir $(1))_lua.c: $(1).lua $(BUILD)/gen/luagen-$(notdir $(1))
	$(BUILD)/gen/luagen-$(notdir $(1)) $(2) $(1).lua > $$@.tmp && mv $$@.tmp $$@

$(4) += $(BUILD)/gen/$(notdir $(1))_lua.o
endef

# Files served or printed by a program (web pages, styles, scripts) become a
# table of struct embed_file (common/embed.h) named SYMBOL, in
# $(BUILD)/gen/SYMBOL.c, whose object joins the library of the program:
#
#   $(call embed_files,SYMBOL,FILES,LIBRARY_OBJECT_LIST)
#
# FILES is usually a $(wildcard): a file added to the folder is embedded by
# the next make.
$(BUILD)/gen/embedgen: common/gen/embedgen.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARNINGS) -D_GNU_SOURCE -o $@ common/gen/embedgen.c

define embed_files
$(BUILD)/gen/$(1).c: $(2) $(BUILD)/gen/embedgen
	@mkdir -p $$(@D)
	$(BUILD)/gen/embedgen $(1) $(2) > $$@.tmp && mv $$@.tmp $$@

$(3) += $(BUILD)/gen/$(1).o
endef

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/flags
	$(CC) $(CPPFLAGS) -Icommon $(CFLAGS) -c $< -o $@

$(eval $(call lua_script,common/erase,erase_script,ERASE_LUA,COMMON_OBJ))
$(eval $(call lua_script,aggregator/fold,fold_script,FOLD_LUA,AGGREGATOR_OBJ))

# The dashboard (aggregator/serve.c serves it at /): every page, style and
# script in aggregator/web/.
$(eval $(call embed_files,web_files,$(sort $(wildcard aggregator/web/*.html aggregator/web/*.css aggregator/web/*.js)),AGGREGATOR_OBJ))
