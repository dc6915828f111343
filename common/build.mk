# common/build.mk -- Lua scripts embedded at build time; included by the top Makefile.
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

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c $(BUILD)/flags
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(eval $(call lua_script,common/erase,erase_script,ERASE_LUA,COMMON_OBJ))
$(eval $(call lua_script,aggregator/fold,fold_script,FOLD_LUA,AGGREGATOR_OBJ))

# Any file embedded as bytes: FILE becomes $(BUILD)/gen/SYMBOL.c defining
# `const char SYMBOL[]` and `const size_t SYMBOL_len` (common/gen/embed.c),
# whose object joins LIBRARY_OBJECT_LIST. The program declares both in a header.
#
#   $(call embed_file,FILE,SYMBOL,LIBRARY_OBJECT_LIST)

$(BUILD)/gen/embed: common/gen/embed.c $(BUILD)/flags
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARNINGS) -o $@ common/gen/embed.c

define embed_file
$(BUILD)/gen/$(2).c: $(1) $(BUILD)/gen/embed
	$(BUILD)/gen/embed $(2) $(1) > $$@.tmp && mv $$@.tmp $$@

$(3) += $(BUILD)/gen/$(2).o
endef

$(eval $(call embed_file,aggregator/web/dashboard.html,web_dashboard,AGGREGATOR_OBJ))
