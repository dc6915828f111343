# collector/build.mk -- collector extras, included by the top Makefile.
#
#   make ua-data    regenerate collector/ua_data.inc from the pinned npm packages
#                   uap-core and crawler-user-agents (run `npm ci` first; see
#                   scripts/gen-ua-data.mjs). The output is committed, so a normal
#                   build needs neither node nor npm.

.PHONY: ua-data
ua-data:
	node scripts/gen-ua-data.mjs collector/ua_data.inc
