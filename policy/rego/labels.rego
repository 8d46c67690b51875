# Ownership: every workload and its pods carry the owner and tier labels.
package k8s.labels

import data.lib.k8s
import rego.v1

required := ["owner", "tier"]

tiers := {"frontend", "backend", "data", "batch"}

deny contains msg if {
	some obj in k8s.workloads
	some l in required
	not object.get(object.get(obj.metadata, "labels", {}), l, "") != ""
	msg := sprintf("%s: missing label %s", [k8s.name(obj), l])
}

deny contains msg if {
	some obj in k8s.workloads
	some l in required
	not object.get(object.get(k8s.pod_meta(obj), "labels", {}), l, "") != ""
	msg := sprintf("%s: pod template missing label %s", [k8s.name(obj), l])
}

deny contains msg if {
	some obj in k8s.workloads
	tier := obj.metadata.labels.tier
	not tier in tiers
	msg := sprintf("%s: label tier must be one of %v, not %q", [k8s.name(obj), sort([t | some t in tiers]), tier])
}
