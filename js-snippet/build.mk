# js-snippet/build.mk -- builds the browser snippet and the demo site; included
# by the top Makefile. dist/ is what the collector serves (static_dir):
#   js-snippet/dist/fs.js, fs.js.gz   the snippet (esbuild --minify, gzip -9 -n)
#   js-snippet/dist/fs-cmp.js, .gz    the same sources built for sites whose
#                                     consent manager decides (no banner)
#   js-snippet/dist/demo/             the demo site, /demo/ under `make run`
# Every `make` prints the snippets' sizes and fails above the 2,048-byte budget
# (each file has its own).
# esbuild comes from node_modules (`make deps`); until it is there, a plain `make`
# builds the C programs and says in one line what to run for the snippet.

SNIPPET_DIST   = js-snippet/dist
SNIPPET_SRC    = $(wildcard js-snippet/src/*) js-snippet/build.mjs
SNIPPET_LIMIT  = 2048
DEMO_SRC       = $(shell find js-snippet/demo -type f 2>/dev/null)
# The SPA section's routes: each gets a copy of demo/app/index.html, so that a
# reload or a shared link works while the collector serves only real files.
DEMO_SPA_ROUTES = reports settings

.PHONY: snippet snippet-size snippet-missing
ifneq ($(wildcard node_modules/esbuild/package.json),)
all: snippet
else
all: snippet-missing
endif
snippet: snippet-size $(SNIPPET_DIST)/demo/.built

snippet-missing:
	@echo "js-snippet: not built, node_modules is missing: run make deps"

node_modules/.package-lock.json:
	@echo "js-snippet: node_modules is missing or incomplete: run make deps" >&2; exit 1

$(SNIPPET_DIST)/fs.js: $(SNIPPET_SRC) node_modules/.package-lock.json
	@mkdir -p $(SNIPPET_DIST)
	node js-snippet/build.mjs $@

$(SNIPPET_DIST)/fs-cmp.js: $(SNIPPET_SRC) node_modules/.package-lock.json
	@mkdir -p $(SNIPPET_DIST)
	node js-snippet/build.mjs $@ --cmp

$(SNIPPET_DIST)/%.js.gz: $(SNIPPET_DIST)/%.js
	gzip -9 -n -c $< > $@

# Runs on every make, so that the sizes are always in view.
snippet-size: $(SNIPPET_DIST)/fs.js.gz $(SNIPPET_DIST)/fs-cmp.js.gz
	@for f in fs.js fs-cmp.js; do \
	    raw=$$(wc -c < $(SNIPPET_DIST)/$$f); gz=$$(wc -c < $(SNIPPET_DIST)/$$f.gz); \
	    echo "js-snippet: $$f $$raw bytes, $$gz gzipped (limit $(SNIPPET_LIMIT))"; \
	    if [ $$gz -gt $(SNIPPET_LIMIT) ]; then \
	        echo "js-snippet: $$f.gz is over $(SNIPPET_LIMIT) bytes" >&2; \
	        rm -f $(SNIPPET_DIST)/$$f $(SNIPPET_DIST)/$$f.gz; exit 1; \
	    fi; \
	done

$(SNIPPET_DIST)/demo/.built: $(DEMO_SRC)
	@rm -rf $(SNIPPET_DIST)/demo && mkdir -p $(SNIPPET_DIST)
	cp -R js-snippet/demo $(SNIPPET_DIST)/demo
	@for r in $(DEMO_SPA_ROUTES); do \
	    mkdir -p $(SNIPPET_DIST)/demo/app/$$r && \
	    cp js-snippet/demo/app/index.html $(SNIPPET_DIST)/demo/app/$$r/index.html; \
	done
	@touch $@
