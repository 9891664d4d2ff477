# The README's commands. Everything they need is built by the project's own scripts.
.PHONY: demo demo-down test crd testenv-up testenv-down bench

demo:  ## local control plane + Graph simulator + operator + a sample profile, until Ready
	hack/demo.sh

test:  ## fmt, clippy, unit tests, integration tests on a real kube-apiserver (what CI runs)
	hack/test.sh

crd:  ## regenerate the committed CRD from the Rust types (and the chart's copy of it)
	for f in cloudsyncprofiles.cloudsync.io.yaml provisionrequests.cloudsync.io.yaml; do \
	  cargo run --quiet -- crd --file $$f > crds/$$f && cp crds/$$f charts/cloudsync-operator/crds/; done

bench:  ## scale benchmark: BENCH_PROFILES (200) profiles in BENCH_TENANTS (10) tenants; prints numbers
	# A fresh control plane for every run: the objects of an earlier run would load the apiserver.
	hack/testenv.sh down
	hack/testenv.sh up
	CLOUDSYNC_TEST_KUBECONFIG=$(CURDIR)/.testenv/admin.kubeconfig cargo bench --bench scale

testenv-up:
	hack/testenv.sh up

testenv-down:
	hack/testenv.sh down

demo-down:  ## stop the demo's simulator, operator and control plane
	hack/demo.sh down
