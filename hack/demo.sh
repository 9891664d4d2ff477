#!/usr/bin/env bash
# The README's first command: a local Kubernetes control plane, the Graph simulator, the operator,
# and the sample profile in examples/, until the profile is Ready. Then it shows the profile, its
# status, its events and every Graph call the operator made.
#
#   hack/demo.sh        run the demo (simulator and operator keep running afterwards)
#   hack/demo.sh down   stop the simulator, the operator and the control plane
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEMO=$ROOT/.testenv/demo
BIN=$ROOT/target/debug/cloudsync-operator
# A control plane of its own, fresh every run, apart from the one the tests use.
export CLOUDSYNC_TESTENV_DIR=$ROOT/.testenv/demo-plane
# The demo tenant; examples/graph-credentials.yaml carries the same client id and secret.
TENANT=11111111-2222-3333-4444-555555555555
CLIENT_ID=0a1b2c3d-0000-4000-8000-000000000001
CLIENT_SECRET=demo-client-secret-not-for-production

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

stop() {
  local f
  for f in "$DEMO"/*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
}

if [ "${1:-}" = down ]; then
  stop
  hack/testenv.sh down
  exit 0
fi

say "building cloudsync-operator"
cargo build --quiet --bin cloudsync-operator --bin kubectl-cloudsync

say "starting a fresh local control plane (the first run builds kube-apiserver, etcd, kubectl and helm from the Go module proxy)"
stop
hack/testenv.sh down
hack/testenv.sh up
eval "$(hack/testenv.sh env)"

say "installing the CRDs (CloudSyncProfile, ProvisionRequest)"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established crd/cloudsyncprofiles.cloudsync.io crd/provisionrequests.cloudsync.io --timeout=60s

mkdir -p "$DEMO"
say "starting the Graph simulator (job status runs 30x faster than real time)"
"$BIN" sim --addr 127.0.0.1:0 --speed 30 --tenant "$TENANT:$CLIENT_ID:$CLIENT_SECRET" >"$DEMO/sim.log" 2>&1 &
echo $! >"$DEMO/sim.pid"
for _ in $(seq 1 100); do
  SIM_URL=$(sed -n 's/^graph simulator listening on //p' "$DEMO/sim.log")
  [ -n "$SIM_URL" ] && break
  sleep 0.1
done
[ -n "${SIM_URL:-}" ] || { cat "$DEMO/sim.log"; echo "the simulator did not start" >&2; exit 1; }
echo "simulator at $SIM_URL"

say "starting the operator against the simulator"
"$BIN" run --graph-url "$SIM_URL" --login-url "$SIM_URL" --resync-seconds 30 >"$DEMO/operator.log" 2>&1 &
echo $! >"$DEMO/operator.pid"

say "applying examples/ (a namespace, the credentials Secret and a CloudSyncProfile)"
kubectl apply -f examples/namespace.yaml
kubectl apply -f examples/graph-credentials.yaml -f examples/cloudsyncprofile.yaml

say "waiting for the profile to be Ready"
if ! kubectl -n identity wait --for=condition=Ready csp/contoso --timeout=120s; then
  kubectl -n identity get csp contoso -o yaml
  tail -n 40 "$DEMO/operator.log"
  exit 1
fi

say "kubectl get csp -o wide"
kubectl get csp -A -o wide

say "the profile's status"
kubectl -n identity get csp contoso -o yaml | sed -n '/^status:/,$p'

say "its events"
kubectl -n identity get events --field-selector involvedObject.name=contoso --sort-by=.metadata.creationTimestamp

# kubectl finds the plugin on PATH.
ln -sfn "$ROOT/target/debug/kubectl-cloudsync" "$CLOUDSYNC_TESTENV_DIR/bin/kubectl-cloudsync"
say "kubectl cloudsync status contoso -n identity (the kubectl plugin)"
kubectl cloudsync status contoso -n identity

say "every Graph call the operator made (from the simulator's log)"
curl -s "$SIM_URL/_sim/calls?format=text"

cat <<EOF

The profile is Ready. The simulator and the operator keep running:
  export KUBECONFIG=$CLOUDSYNC_TESTENV_DIR/admin.kubeconfig PATH=$CLOUDSYNC_TESTENV_DIR/bin:\$PATH
  kubectl -n identity patch csp contoso --type merge -p '{"spec":{"suspend":true}}'   # pause the jobs
  kubectl -n identity describe csp contoso
  kubectl cloudsync provision contoso -n identity --user "CN=Adele Vance,OU=Sales,DC=contoso,DC=com"
  logs: $DEMO/operator.log, $DEMO/sim.log
Stop everything with: hack/demo.sh down
EOF
