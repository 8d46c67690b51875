# Pod security: non-root, read-only root filesystem, no privilege escalation, all capabilities
# dropped, seccomp RuntimeDefault (or Localhost). Mirrors policy/kyverno/*.yaml.
package k8s.security

import data.lib.k8s
import rego.v1

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	not k8s.effective(obj, c, "runAsNonRoot") == true
	msg := sprintf("%s: container %s must run as non-root (runAsNonRoot: true)", [k8s.name(obj), c.name])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	k8s.effective(obj, c, "runAsUser") == 0
	msg := sprintf("%s: container %s must run as non-root (runAsUser is 0)", [k8s.name(obj), c.name])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	not c.securityContext.readOnlyRootFilesystem == true
	msg := sprintf("%s: container %s must have a read-only root filesystem", [k8s.name(obj), c.name])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	not c.securityContext.allowPrivilegeEscalation == false
	msg := sprintf("%s: container %s must set allowPrivilegeEscalation: false", [k8s.name(obj), c.name])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	c.securityContext.privileged == true
	msg := sprintf("%s: container %s must not be privileged", [k8s.name(obj), c.name])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	not "ALL" in object.get(object.get(object.get(c, "securityContext", {}), "capabilities", {}), "drop", [])
	msg := sprintf("%s: container %s must drop ALL capabilities", [k8s.name(obj), c.name])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	some cap in object.get(object.get(object.get(c, "securityContext", {}), "capabilities", {}), "add", [])
	msg := sprintf("%s: container %s must not add capability %s", [k8s.name(obj), c.name, cap])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	profile := k8s.effective(obj, c, "seccompProfile")
	not profile.type in {"RuntimeDefault", "Localhost"}
	msg := sprintf("%s: container %s must use the RuntimeDefault seccomp profile", [k8s.name(obj), c.name])
}

deny contains msg if {
	some obj in k8s.workloads
	some c in k8s.containers(obj)
	not k8s.effective(obj, c, "seccompProfile")
	msg := sprintf("%s: container %s must use the RuntimeDefault seccomp profile", [k8s.name(obj), c.name])
}
