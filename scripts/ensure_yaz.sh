#!/usr/bin/env bash
# Copy cataloguing speaks Z39.50 through YAZ's ZOOM C library (Debian's libyaz5), and its tests
# ask a real Zebra server (idzebra-2.0's zebrasrv answers Z39.50 and SRU; yaz-client checks
# our /sru). Installed here when missing and we may; otherwise the Zebra tests say why they
# skip (and fail instead in CI, CI=true).
missing=""
command -v zebrasrv >/dev/null || missing="$missing idzebra-2.0"
command -v yaz-client >/dev/null || missing="$missing yaz"
ldconfig -p 2>/dev/null | grep -q 'libyaz\.so\.5' || missing="$missing libyaz5"
if [ -z "$missing" ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing Debian's$missing for copy cataloguing ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
    || echo "could not install$missing; Z39.50 tests will not run" >&2
else
  echo "note:$missing missing (install Debian's idzebra-2.0 yaz libyaz5); Z39.50 tests will skip" >&2
fi
exit 0
