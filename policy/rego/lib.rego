# Helpers shared by the asset-inventory policies. Input: {"objects": [<Kubernetes object>, ...]},
# the whole rendered bundle (tools/policy-check builds it), so that rules can look
# across objects (a namespace's NetworkPolicies).
package lib.k8s

import rego.v1

workload_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}

pod_spec(obj) := obj.spec if obj.kind == "Pod"

pod_spec(obj) := obj.spec.template.spec if obj.kind in workload_kinds

pod_spec(obj) := obj.spec.jobTemplate.spec.template.spec if obj.kind == "CronJob"

pod_meta(obj) := obj.metadata if obj.kind == "Pod"

pod_meta(obj) := object.get(obj.spec.template, "metadata", {}) if obj.kind in workload_kinds

pod_meta(obj) := object.get(obj.spec.jobTemplate.spec.template, "metadata", {}) if obj.kind == "CronJob"

workloads contains obj if {
	some obj in input.objects
	pod_spec(obj)
}

containers(obj) := array.concat(object.get(pod_spec(obj), "containers", []), object.get(pod_spec(obj), "initContainers", []))

# "Deployment/asset-inventory/inventory-api"
name(obj) := sprintf("%s/%s/%s", [obj.kind, object.get(obj.metadata, "namespace", "default"), obj.metadata.name])

namespace(obj) := object.get(obj.metadata, "namespace", "default")

# A container's effective security setting: the container's own, else the pod's.
effective(obj, c, field) := c.securityContext[field]

effective(obj, c, field) := pod_spec(obj).securityContext[field] if {
	not has_key(object.get(c, "securityContext", {}), field)
}

has_key(o, k) if {
	_ = o[k]
}
