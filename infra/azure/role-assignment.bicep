// Least-privilege access of the asset-inventory `azure` collector (docs/collectors-azure.md).
//
// Deploy at the management group whose subscriptions the collector should list — usually the
// tenant root group (its name is the tenant id):
//
//   az deployment mg create --management-group-id <tenant-id> --location westeurope \
//     --template-file infra/azure/role-assignment.bicep \
//     --parameters principalId=<object id of the collector's managed identity>
//
// Two built-in, read-only roles, inherited by every management group and subscription below:
//   Reader                  -> GET /subscriptions lists each subscription (id, name, state,
//                              tenant, policies, tags). Nothing is written anywhere.
//   Management Group Reader -> POST /providers/Microsoft.Management/getEntities returns the
//                              management-group ancestors (org_path). Without it the collector
//                              still works and leaves org_path empty.
// For one subscription only, assign Reader at that subscription instead (org_path stays empty
// unless Management Group Reader is granted on its management groups).
targetScope = 'managementGroup'

@description('Object (principal) id of the collector identity: the user-assigned managed identity of workload-identity.bicep, or a service principal.')
param principalId string

@description('Principal type of principalId.')
@allowed(['ServicePrincipal', 'User', 'Group'])
param principalType string = 'ServicePrincipal'

@description('Also grant Management Group Reader, so that org_path holds the management-group path.')
param readManagementGroups bool = true

// Built-in role definition ids (identical in every tenant).
var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
var managementGroupReaderRoleId = 'ac63b705-f282-497d-ac71-919bf39d939d'

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(managementGroup().id, principalId, readerRoleId)
  properties: {
    roleDefinitionId: tenantResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: principalId
    principalType: principalType
    description: 'asset-inventory azure collector: list subscriptions (read-only)'
  }
}

resource mgReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (readManagementGroups) {
  name: guid(managementGroup().id, principalId, managementGroupReaderRoleId)
  properties: {
    roleDefinitionId: tenantResourceId('Microsoft.Authorization/roleDefinitions', managementGroupReaderRoleId)
    principalId: principalId
    principalType: principalType
    description: 'asset-inventory azure collector: read management-group paths (read-only)'
  }
}
