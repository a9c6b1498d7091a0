#!/usr/bin/env bash
# Runs nginx-tests' uwsgi.t and uwsgi_body.t (github.com/nginx/nginx-tests) against the container:
#   NGINX_TESTS=/path/to/nginx-tests test/nginx-tests/run.sh [prove options]
# Needs perl (prove), nginx, and a built checkout (`pnpm run build`). The `uwsgi` stand-in in this
# folder comes first on PATH, so the tests start the container where they would start uWSGI.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tests=${NGINX_TESTS:?set NGINX_TESTS to a checkout of https://github.com/nginx/nginx-tests}
export PATH="$here:$PATH"
export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-$(command -v nginx || echo /usr/sbin/nginx)}
# Debian builds geoip, perl, mail, stream... as dynamic modules and Test::Nginx loads each one its
# binary lists: the libnginx-mod-* packages put them here.
[ -d /usr/lib/nginx/modules ] && export TEST_NGINX_MODULES=${TEST_NGINX_MODULES:-/usr/lib/nginx/modules}
cd "$tests"
exec prove "$@" uwsgi.t uwsgi_body.t
