#!/usr/bin/env bash
# xtcp2 quick start. Run as root on Debian (or any Linux with Node.js and npm):
#   ./quickstart.sh          install Deno if missing, then collect this host once (JSON lines)
#   ./quickstart.sh test     install the test dependencies, then run the whole test suite
#   ./quickstart.sh bench    run the benchmarks and refresh the README's performance table
set -euo pipefail
cd "$(dirname "$0")"

DENO_VERSION=2.9.6

ensure_deno() {
  if command -v deno >/dev/null 2>&1 && deno --version | grep -q '^deno 2\.'; then
    return
  fi
  if [ ! -x .deno/node_modules/deno/deno ]; then
    echo "quickstart: installing Deno ${DENO_VERSION} from npm into .deno/" >&2
    command -v npm >/dev/null 2>&1 || { echo "quickstart: npm is required to install Deno" >&2; exit 1; }
    npm install --silent --no-audit --no-fund --prefix .deno "deno@${DENO_VERSION}" >&2
  fi
  export PATH="$PWD/.deno/node_modules/.bin:$PATH"
  deno --version | head -n 1 >&2
}

ensure_apt() {
  # Packages the tests use: ip/ss (iproute2), strace (reads the filter bytecode ss sends), tshark
  # (reads our pcap captures), capsh, a gRPC client that is not ours (python3-grpcio), promtool
  # (prometheus), real brokers (nats-server, redis-server; the tests start them on free ports,
  # apt does not start them here), librdkafka1
  # (its mock cluster is the Kafka broker of the tests), kcat (a Kafka consumer that is not
  # ours, reading every codec back), openssl (the https test makes its own CA), systemd
  # (systemd-analyze verify checks contrib/systemd/xtcp2.service; nothing is started); for the kernel
  # suite, QEMU, a static busybox (the VM's userland) and xz (Debian's 6.12 modules are .ko.xz);
  # for the enrichment tests, podman with runc, netavark and iptables (real containers, podman's
  # Docker Engine API; the image is made from the static busybox), lldpd (real LLDP neighbours),
  # ethtool and pci.ids (what the NIC facts are checked against); for s3parquet, Ceph's monitor,
  # OSD and RADOS gateway (a real S3, started by the tests on free ports) and curl (an S3 client
  # that is not ours).
  local missing=()
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)
  command -v ss >/dev/null 2>&1 || missing+=(iproute2)
  command -v strace >/dev/null 2>&1 || missing+=(strace)
  command -v tshark >/dev/null 2>&1 || missing+=(tshark)
  command -v capsh >/dev/null 2>&1 || missing+=(libcap2-bin)
  /usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || missing+=(python3-grpcio)
  [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
  [ -x /usr/bin/redis-server ] || missing+=(redis-server)
  [ -e /usr/lib/x86_64-linux-gnu/librdkafka.so.1 ] || missing+=(librdkafka1)
  [ -x /usr/bin/promtool ] || missing+=(prometheus)
  [ -x /usr/bin/kcat ] || missing+=(kcat)
  [ -x /usr/bin/openssl ] || missing+=(openssl)
  [ -x /usr/bin/systemd-analyze ] || missing+=(systemd)
  command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
  [ -x /usr/bin/podman ] || missing+=(podman)
  [ -x /usr/sbin/runc ] || missing+=(runc)
  dpkg -s netavark >/dev/null 2>&1 || missing+=(netavark)
  [ -x /usr/sbin/iptables ] || missing+=(iptables)
  [ -x /usr/sbin/lldpd ] || missing+=(lldpd)
  [ -x /usr/sbin/ethtool ] || missing+=(ethtool)
  [ -f /usr/share/misc/pci.ids ] || missing+=(pci.ids)
  [ -x /usr/bin/ceph-mon ] || missing+=(ceph-mon)
  [ -x /usr/bin/ceph-osd ] || missing+=(ceph-osd)
  [ -x /usr/bin/radosgw ] || missing+=(radosgw)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "quickstart: missing ${missing[*]}; run as root or install them" >&2
      exit 1
    fi
    echo "quickstart: installing ${missing[*]} (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
}

CHDB_VERSION=26.7.3-stable.1

ensure_chdb() {
  # ClickHouse's embedded engine, for the tests that prove ClickHouse reads our output (~550 MB).
  if [ ! -f .deps/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so ]; then
    echo "quickstart: installing @chdb/lib-linux-x64-gnu ${CHDB_VERSION} from npm into .deps/chdb/" >&2
    npm install --silent --no-audit --no-fund --prefix .deps/chdb "@chdb/lib-linux-x64-gnu@${CHDB_VERSION}" >&2
  fi
  export XTCP2_CHDB_LIB="$PWD/.deps/chdb/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so"
}

cmd="${1:-run}"
shift || true
case "$cmd" in
  run)
    ensure_deno
    exec deno task start "$@"
    ;;
  test)
    ensure_deno
    ensure_apt
    ensure_chdb
    exec deno task test "$@"
    ;;
  bench)
    ensure_deno
    exec deno task bench:report "$@"
    ;;
  *)
    echo "usage: $0 [run|test|bench]" >&2
    exit 2
    ;;
esac
