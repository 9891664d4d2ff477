# The README's commands. Everything they need is built by the project's own scripts.
.PHONY: demo demo-down test crd testenv-up testenv-down bench

demo:  ## local control plane + Graph simulator + operator + a sample profile, until Ready
	hack/demo.sh

test:  ## fmt, clippy, unit tests, integration tests on a real kube-apiserver (what CI runs)
	hack/test.sh

crd:  ## regenerate the committed CRD from the Rust types
	cargo run --quiet -- crd > crds/cloudsyncprofiles.cloudsync.io.yaml

testenv-up:
	hack/testenv.sh up

testenv-down:
	hack/testenv.sh down

demo-down:  ## stop the demo's simulator, operator and control plane
	hack/demo.sh down
