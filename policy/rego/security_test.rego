package k8s.security_test

import data.fixtures_test as f
import data.k8s.security
import rego.v1

test_compliant_allowed if {
	count(security.deny) == 0 with input as f.good
}

test_root_user_denied if {
	c := object.union(f.container, {"securityContext": object.union(f.container.securityContext, {"runAsUser": 0})})
	some msg in security.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "runAsUser is 0")
}

test_run_as_non_root_false_denied if {
	c := object.union(f.container, {"securityContext": object.union(f.container.securityContext, {"runAsNonRoot": false})})
	some msg in security.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "must run as non-root")
}

test_pod_level_non_root_is_inherited if {
	c := json.patch(f.container, [{"op": "remove", "path": "/securityContext/runAsNonRoot"}])
	not c.securityContext.runAsNonRoot
	count(security.deny) == 0 with input as f.bundle([f.deployment(c)])
}

test_writable_root_denied if {
	c := object.union(f.container, {"securityContext": object.union(f.container.securityContext, {"readOnlyRootFilesystem": false})})
	some msg in security.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "read-only root filesystem")
}

test_privilege_escalation_denied if {
	c := json.patch(f.container, [{"op": "remove", "path": "/securityContext/allowPrivilegeEscalation"}])
	some msg in security.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "allowPrivilegeEscalation: false")
}

test_capabilities_not_dropped_denied if {
	c := json.patch(f.container, [{"op": "replace", "path": "/securityContext/capabilities", "value": {"drop": ["NET_RAW"]}}])
	some msg in security.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "must drop ALL capabilities")
}

test_added_capability_denied if {
	c := object.union(f.container, {"securityContext": object.union(f.container.securityContext, {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}})})
	some msg in security.deny with input as f.bundle([f.deployment(c)])
	contains(msg, "must not add capability NET_ADMIN")
}

test_missing_seccomp_denied if {
	d := f.deployment(f.container)
	d2 := json.patch(d, [{"op": "remove", "path": "/spec/template/spec/securityContext/seccompProfile"}])
	some msg in security.deny with input as f.bundle([d2])
	contains(msg, "seccomp")
}

test_cronjob_checked_too if {
	d := f.deployment(json.patch(f.container, [{"op": "replace", "path": "/securityContext", "value": {}}]))
	cj := {"kind": "CronJob", "metadata": {"name": "c", "namespace": "inv"}, "spec": {"jobTemplate": {"spec": {"template": d.spec.template}}}}
	denied := security.deny with input as f.bundle([cj])
	denied == {
		"CronJob/inv/c: container api must have a read-only root filesystem",
		"CronJob/inv/c: container api must set allowPrivilegeEscalation: false",
		"CronJob/inv/c: container api must drop ALL capabilities",
	}
}
