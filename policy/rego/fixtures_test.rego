# Building blocks of the policy unit tests: one compliant bundle, varied per test.
package fixtures_test

import rego.v1

container := {
	"name": "api",
	"image": "ghcr.io/companyos/asset-inventory@sha256:0000000000000000000000000000000000000000000000000000000000000000",
	"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
	"securityContext": {
		"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
		"capabilities": {"drop": ["ALL"]},
	},
}

deployment(c) := {
	"apiVersion": "apps/v1", "kind": "Deployment",
	"metadata": {"name": "api", "namespace": "inv", "labels": {"owner": "platform-team", "tier": "backend"}},
	"spec": {"template": {
		"metadata": {"labels": {"owner": "platform-team", "tier": "backend"}},
		"spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}, "containers": [c]},
	}},
}

default_deny := {
	"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
	"metadata": {"name": "default-deny", "namespace": "inv"},
	"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
}

bundle(objs) := {"objects": array.concat([default_deny], objs)}

good := bundle([deployment(container)])
