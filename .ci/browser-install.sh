#!/usr/bin/env bash
# Installs Debian's chromium and its chromedriver for advdf's browser test of the DCR rating page
# (tests/test_assess_study.py, tests/helpers/browser.py) and `make assess-demo`.
#
# Idempotent: does nothing but print the versions when both are installed, so CI can call it unconditionally.
# Debian/Ubuntu only (apt-get); needs root or passwordless sudo when something is missing. Selenium drives the
# system's chromedriver: nothing is downloaded at run time.
set -euo pipefail

CI_SCRIPT=browser-install
source "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

browser=""
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then browser="$name"; break; fi
done

if [[ -z "$browser" ]] || ! command -v chromedriver >/dev/null 2>&1; then
    echo "browser-install: chromium or chromedriver missing; installing chromium chromium-driver"
    run_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    run_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
    browser=chromium
else
    echo "browser-install: chromium and chromedriver already installed"
fi

"$browser" --version 2>/dev/null || true
chromedriver --version
