package k8s.labels_test

import data.fixtures_test as f
import data.k8s.labels
import rego.v1

test_labelled_allowed if {
	count(labels.deny) == 0 with input as f.good
}

test_missing_owner_denied if {
	d := json.patch(f.deployment(f.container), [{"op": "remove", "path": "/metadata/labels/owner"}])
	labels.deny == {"Deployment/inv/api: missing label owner"} with input as f.bundle([d])
}

test_pod_template_labels_required if {
	d := json.patch(f.deployment(f.container), [{"op": "remove", "path": "/spec/template/metadata"}])
	labels.deny == {
		"Deployment/inv/api: pod template missing label owner",
		"Deployment/inv/api: pod template missing label tier",
	} with input as f.bundle([d])
}

test_unknown_tier_denied if {
	d := json.patch(f.deployment(f.container), [{"op": "replace", "path": "/metadata/labels/tier", "value": "gold"}])
	some msg in labels.deny with input as f.bundle([d])
	contains(msg, "label tier must be one of")
}
