#!/usr/bin/env bash
# Browser tests drive Debian's chromium (never a downloaded browser build).
# Installed here when missing and we may; otherwise the browser tests say why they skip
# (and fail instead when LIBRARY_REQUIRE_BROWSER=1, as in CI).
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium; browser tests will not run" >&2
else
  echo "note: /usr/bin/chromium is missing (install Debian's 'chromium' package); browser tests will skip" >&2
fi
exit 0
