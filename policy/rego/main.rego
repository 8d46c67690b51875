# Every rule of every asset-inventory policy, in one set: what make deploy-check evaluates.
package main

import rego.v1

deny contains msg if some msg in data.k8s.images.deny

deny contains msg if some msg in data.k8s.security.deny

deny contains msg if some msg in data.k8s.resources.deny

deny contains msg if some msg in data.k8s.labels.deny

deny contains msg if some msg in data.k8s.egress.deny
