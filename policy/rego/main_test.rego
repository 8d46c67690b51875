package main_test

import data.fixtures_test as f
import data.main
import rego.v1

test_good_bundle_passes_every_policy if {
	count(main.deny) == 0 with input as f.good
}

test_main_collects_every_package if {
	c := json.patch(f.container, [{"op": "replace", "path": "/image", "value": "nginx:latest"}, {"op": "remove", "path": "/resources"}])
	denied := main.deny with input as {"objects": [f.deployment(c)]}
	some a in denied
	contains(a, ":latest")
	some b in denied
	contains(b, "missing resources")
	some e in denied
	contains(e, "egress is not explicit")
}
