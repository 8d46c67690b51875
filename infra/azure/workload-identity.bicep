// The identity the `azure` collector runs as on AKS, through Azure Workload Identity: a
// user-assigned managed identity, trusting the cluster's OIDC issuer for exactly one Kubernetes
// service account. No secret exists anywhere. Deploy in any resource group:
//
//   az deployment group create -g <rg> --template-file infra/azure/workload-identity.bicep \
//     --parameters oidcIssuer="$(az aks show -g <aks-rg> -n <aks> --query oidcIssuerProfile.issuerUrl -o tsv)"
//
// then pass the `principalId` output to role-assignment.bicep and the `clientId` output to the
// service account annotation `azure.workload.identity/client-id` (see README.md).
targetScope = 'resourceGroup'

@description('OIDC issuer URL of the AKS cluster (az aks show --query oidcIssuerProfile.issuerUrl).')
param oidcIssuer string

@description('Namespace of the collector CronJob.')
param namespace string = 'inventory'

@description('Kubernetes service account of the collector CronJob.')
param serviceAccount string = 'inventory-collector-azure'

param location string = resourceGroup().location

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'asset-inventory-collector-azure'
  location: location
}

resource federated 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: identity
  name: 'aks-${namespace}-${serviceAccount}'
  properties: {
    issuer: oidcIssuer
    subject: 'system:serviceaccount:${namespace}:${serviceAccount}'
    audiences: ['api://AzureADTokenExchange']
  }
}

@description('Client id: the service account annotation azure.workload.identity/client-id.')
output clientId string = identity.properties.clientId
@description('Object id: principalId of role-assignment.bicep.')
output principalId string = identity.properties.principalId
@description('Tenant id: AZURE_TENANT_ID (the webhook injects it too).')
output tenantId string = identity.properties.tenantId
