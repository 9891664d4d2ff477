#!/usr/bin/env bash
# Regenerates the Argo CD health testdata from the operator's real status: the operator runs
# against the Graph simulator and a real kube-apiserver, each case is brought about the way a user
# (or Graph) would, and `kubectl get -o yaml` (managedFields are left out by kubectl) is saved.
#
#   hack/testenv.sh up && eval "$(hack/testenv.sh env)"
#   cargo build --bin cloudsync-operator
#   hack/argocd-health/capture.sh [operator binary]     # default: target/debug/cloudsync-operator
#
# Writes to ARGO_OUT (default: the testdata/ directory). Uses its own namespace (ARGO_NS, default
# argo-health), its own simulator and operator (watching only that namespace), and removes all
# three at the end. The CRD must be installed. Needs kubectl, curl and jq.
# Review the diff of testdata/ afterwards: timestamps and ids change on every run, and the
# expected messages in health_test.yaml name ids and times from the manifests.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${1:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/cloudsync-operator}
NS=${ARGO_NS:-argo-health}
OUT=${ARGO_OUT:-$ROOT/argocd/resource_customizations/cloudsync.io/CloudSyncProfile/testdata}
TENANT=22222222-3333-4444-5555-666666666666  # the profiles' tenant
FAULTY=33333333-4444-5555-6666-777777777777  # a tenant whose instantiate answers 404 after creating
FLAKY=44444444-5555-6666-7777-888888888888   # a tenant whose service principal lookups answer 503
CLIENT=0a1b2c3d-0000-4000-8000-0000000000a1
SECRET=argo-health-client-secret
WORK=$(mktemp -d)
SIM_PID="" OP_PID=""

say() { printf '==> %s\n' "$*" >&2; }

cleanup() {
  set +e
  if [ -n "$OP_PID" ]; then kill -CONT "$OP_PID" 2>/dev/null; fi
  if kubectl get ns "$NS" >/dev/null 2>&1; then
    # Release every profile without touching Graph, then drop the namespace.
    for p in $(kubectl -n "$NS" get csp -o name 2>/dev/null); do
      kubectl -n "$NS" patch "$p" --type merge -p '{"spec":{"deletionPolicy":"Orphan"}}' >/dev/null 2>&1
    done
    kubectl -n "$NS" delete csp --all --wait=true --timeout=60s >/dev/null 2>&1
    kubectl -n "$NS" delete secrets --all >/dev/null 2>&1
    kubectl delete ns "$NS" --wait=false >/dev/null 2>&1
    # hack/testenv.sh runs no kube-controller-manager, so nothing finishes a namespace deletion:
    # the namespace is empty now, so finish it the way the namespace controller would.
    sleep 2
    if kubectl get ns "$NS" >/dev/null 2>&1; then
      kubectl get ns "$NS" -o json | jq '.spec.finalizers = []' |
        kubectl replace --raw "/api/v1/namespaces/$NS/finalize" -f - >/dev/null 2>&1
    fi
  fi
  [ -n "$OP_PID" ] && kill "$OP_PID" 2>/dev/null
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# jsonpath of a condition field
cond() { kubectl -n "$NS" get csp "$1" -o "jsonpath={.status.conditions[?(@.type==\"$2\")].$3}"; }

# wait_for PROFILE CONDITION FIELD VALUE: until the condition's field has the value and the status
# describes the current generation.
wait_for() {
  local p=$1 c=$2 f=$3 v=$4 i
  for i in $(seq 1 240); do
    if [ "$(cond "$p" "$c" "$f")" = "$v" ] &&
      [ "$(kubectl -n "$NS" get csp "$p" -o 'jsonpath={.status.observedGeneration}')" = \
        "$(kubectl -n "$NS" get csp "$p" -o 'jsonpath={.metadata.generation}')" ]; then
      return 0
    fi
    sleep 0.25
  done
  kubectl -n "$NS" get csp "$p" -o yaml >&2
  tail -n 30 "$WORK/operator.log" >&2
  echo "timed out waiting for $p: $c.$f=$v" >&2
  return 1
}

save() { # PROFILE FILE
  kubectl -n "$NS" get csp "$1" -o yaml >"$OUT/$2.yaml"
  say "saved testdata/$2.yaml ($(cond "$1" Ready reason))"
}

profile() { # NAME TENANT DOMAIN SECRET [extra spec yaml lines]
  local name=$1 tenant=$2 domain=$3 secret=$4
  shift 4
  kubectl create -f - >/dev/null <<EOF
apiVersion: cloudsync.io/v1alpha1
kind: CloudSyncProfile
metadata:
  name: $name
  namespace: $NS
spec:
  tenantId: $tenant
  credentials:
    secretRef:
      name: $secret
  domain: $domain
$(for l in "$@"; do echo "  $l"; done)
EOF
}

credentials() { # NAME CLIENT_SECRET
  kubectl -n "$NS" create secret generic "$1" --from-literal=clientId="$CLIENT" \
    --from-literal=clientSecret="$2" >/dev/null
}

sim() { curl -fsS -H 'Content-Type: application/json' "$@"; }

kubectl get crd cloudsyncprofiles.cloudsync.io >/dev/null
[ -x "$BIN" ] || { echo "no operator binary at $BIN" >&2; exit 1; }
if kubectl get ns "$NS" >/dev/null 2>&1; then
  echo "namespace $NS exists; delete it first (kubectl delete ns $NS)" >&2
  exit 1
fi
kubectl create ns "$NS" >/dev/null
mkdir -p "$OUT"

say "starting the Graph simulator and the operator (namespace $NS)"
"$BIN" sim --addr 127.0.0.1:0 --speed 60 --tenant "$TENANT:$CLIENT:$SECRET" \
  --tenant "$FAULTY:$CLIENT:$SECRET" --tenant "$FLAKY:$CLIENT:$SECRET" \
  --fault "tenant=$FAULTY,method=POST,path=/beta/applicationTemplates/*/instantiate,kind=instantiate-404-after-create" \
  --fault "tenant=$FAULTY,kind=list-lag,seconds=36000" \
  --fault "tenant=$FLAKY,method=GET,path=/beta/servicePrincipals,kind=status,status=503" \
  >"$WORK/sim.log" 2>&1 &
SIM_PID=$!
SIM=""
for _ in $(seq 1 100); do
  SIM=$(sed -n 's/^graph simulator listening on //p' "$WORK/sim.log")
  [ -n "$SIM" ] && break
  sleep 0.1
done
[ -n "$SIM" ] || { cat "$WORK/sim.log" >&2; exit 1; }
"$BIN" run --graph-url "$SIM" --login-url "$SIM" --namespace "$NS" --resync-seconds 5 \
  --user-action-retry-seconds 5 --graph-timeout-seconds 5 --metrics-addr 127.0.0.1:0 \
  >"$WORK/operator.log" 2>&1 &
OP_PID=$!

credentials graph-credentials "$SECRET"
credentials wrong-credentials not-the-secret
credentials woodgrove-credentials "$SECRET"

say "progressing-new: a profile the operator has not seen yet"
kill -STOP "$OP_PID"
profile fabrikam "$TENANT" fabrikam.com graph-credentials
save fabrikam progressing-new
kill -CONT "$OP_PID"

say "healthy, suspended, cleanup: profiles that become Ready"
profile contoso "$TENANT" contoso.com graph-credentials "tenantSyncFlag: true" "passwordHashSync: true"
profile northwind "$TENANT" northwind.example graph-credentials "passwordHashSync: true"
profile woodgrove "$TENANT" woodgrove.example woodgrove-credentials
say "degraded-secret-not-found, degraded-credentials-rejected"
profile litware "$TENANT" litware.example missing-credentials
profile adventureworks "$TENANT" adventure-works.example wrong-credentials
say "progressing-instantiate-pending, progressing-retrying: Graph misbehaving"
profile tailspin "$FAULTY" tailspin.example graph-credentials
profile wingtip "$FLAKY" wingtip.example graph-credentials

wait_for litware Ready reason SecretNotFound
save litware degraded-secret-not-found
wait_for adventureworks Ready reason CredentialsRejected
save adventureworks degraded-credentials-rejected
wait_for tailspin Ready reason InstantiatePending
save tailspin progressing-instantiate-pending
wait_for wingtip Ready reason Retrying
save wingtip progressing-retrying

wait_for contoso Ready status True
sleep 3 # a few job cycles (3 service minutes)
kubectl -n "$NS" annotate csp contoso cloudsync.io/reconcile-requested-at="$(date +%s%N)" --overwrite >/dev/null
sleep 1
wait_for contoso Ready status True
save contoso healthy

wait_for fabrikam Ready status True
say "progressing-generation: a spec change the operator has not observed yet"
kill -STOP "$OP_PID"
kubectl -n "$NS" patch csp fabrikam --type merge -p '{"spec":{"passwordHashSync":true}}' >/dev/null
save fabrikam progressing-generation
kill -CONT "$OP_PID"

say "suspended"
wait_for northwind Ready status True
kubectl -n "$NS" patch csp northwind --type merge -p '{"spec":{"suspend":true}}' >/dev/null
wait_for northwind Suspended status True
sleep 1
save northwind suspended

say "degraded-quarantine: Graph quarantines a job that needs a person (TooManyDeletes is never restarted by the operator)"
SP=$(kubectl -n "$NS" get csp contoso -o 'jsonpath={.status.servicePrincipal.id}')
JOB=$(kubectl -n "$NS" get csp contoso -o 'jsonpath={.status.jobs[?(@.templateId=="AD2AADProvisioning")].id}')
sim -X POST "$SIM/_sim/tenants/$TENANT/servicePrincipals/$SP/jobs/$JOB/quarantine" \
  -d '{"reason":"TooManyDeletes","errorCode":"TooManyDeletes","message":"The number of deletions exceeds the accidental deletions threshold of 500."}' >/dev/null
kubectl -n "$NS" annotate csp contoso cloudsync.io/reconcile-requested-at="$(date +%s%N)" --overwrite >/dev/null
wait_for contoso Degraded status True
save contoso degraded-quarantine

say "degraded-agents: quarantined for no active agents; the operator restarts it once and the runs keep failing"
SP=$(kubectl -n "$NS" get csp northwind -o 'jsonpath={.status.servicePrincipal.id}')
kubectl -n "$NS" patch csp northwind --type merge -p '{"spec":{"suspend":false}}' >/dev/null
wait_for northwind Ready status True
JOB=$(kubectl -n "$NS" get csp northwind -o 'jsonpath={.status.jobs[?(@.templateId=="AD2AADProvisioning")].id}')
sim -X POST "$SIM/_sim/tenants/$TENANT/servicePrincipals/$SP/jobs/$JOB/fail" -d '{"errorCode":"HybridIdentityServiceNoActiveAgents"}' >/dev/null
sim -X POST "$SIM/_sim/tenants/$TENANT/servicePrincipals/$SP/jobs/$JOB/quarantine" \
  -d '{"reason":"EncounteredQuarantineException","errorCode":"HybridIdentityServiceNoActiveAgents"}' >/dev/null
kubectl -n "$NS" annotate csp northwind cloudsync.io/reconcile-requested-at="$(date +%s%N)" --overwrite >/dev/null
wait_for northwind Degraded status True
save northwind degraded-agents

say "cleanup-blocked: the credentials Secret was deleted before the profile"
wait_for woodgrove Ready status True
kubectl -n "$NS" delete secret woodgrove-credentials >/dev/null
kubectl -n "$NS" delete csp woodgrove --wait=false >/dev/null
wait_for woodgrove Ready reason CleanupBlocked
save woodgrove cleanup-blocked

say "done; the operator log is in $WORK/operator.log until exit"
