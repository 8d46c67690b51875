"""schemathesis hooks of query-api/tests/openapi_contract.rs (loaded via SCHEMATHESIS_HOOKS).

OpenAPI 3.0, the version poem-openapi writes, has no `propertyNames`: the rule on label keys of
`POST /api/v1/monitoring` (1-128 characters of [A-Za-z0-9_./-]) is stated in the description of
`labels` only. This hook gives schemathesis that same rule as JSON Schema, so that the data it
generates as valid is valid. Nothing else is changed, and no check is skipped.
"""

import schemathesis

LABEL_KEY = "^[A-Za-z0-9_./-]{1,128}$"


@schemathesis.hook
def before_load_schema(context, raw_schema):
    labels = raw_schema["components"]["schemas"]["DeclareMonitoring"]["properties"]["labels"]
    # The same map, its keys constrained: every key matches LABEL_KEY, with the value schema.
    labels["patternProperties"] = {LABEL_KEY: labels.pop("additionalProperties")}
    labels["additionalProperties"] = False
