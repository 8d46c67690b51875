package k8s.resources_test

import data.fixtures_test as f
import data.k8s.resources
import rego.v1

test_requests_and_limits_allowed if {
	count(resources.deny) == 0 with input as f.good
}

test_missing_limits_denied if {
	c := json.patch(f.container, [{"op": "remove", "path": "/resources/limits"}])
	denied := resources.deny with input as f.bundle([f.deployment(c)])
	denied == {
		"Deployment/inv/api: container api is missing resources.limits.cpu",
		"Deployment/inv/api: container api is missing resources.limits.memory",
	}
}

test_missing_everything_denied if {
	c := object.remove(f.container, ["resources"])
	count(resources.deny) == 4 with input as f.bundle([f.deployment(c)])
}
