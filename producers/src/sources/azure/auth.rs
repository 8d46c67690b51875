//! How the `azure` source gets its Entra ID token: one credential of `azure_identity`, chosen
//! from the configuration (client secret, workload identity, managed identity), or a fixed token
//! for tests. The credentials talk to Entra ID through the collector's own `reqwest` client
//! (rustls with ring), not azure_core's default transport (reqwest 0.13 with aws-lc-rs).
//!
//! Nothing here logs or returns a token. [`principal`] reads the token's *claims* (`appid`,
//! `oid`), which are identifiers, never the token itself.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::headers::Headers;
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, HttpClient, Method, Request, Transport,
};
use azure_core::time::{Duration, OffsetDateTime};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use super::AzureConfig;
use crate::config::ConfigError;
use crate::sources::shared::http::read_body;

/// azure_core's transport over the collector's `reqwest` 0.12 client; response bodies are read
/// with the source's byte limit.
#[derive(Debug)]
struct ReqwestTransport {
    client: reqwest::Client,
    max_body: u64,
}

#[async_trait::async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let method = match request.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
            other => {
                return Err(azure_core::Error::with_message(
                    ErrorKind::Other,
                    format!("unsupported HTTP method {other:?}"),
                ))
            }
        };
        let mut req = self.client.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        req = match request.body() {
            Body::Bytes(bytes) => req.body(bytes.clone()),
            Body::SeekableStream(_) => {
                return Err(azure_core::Error::with_message(
                    ErrorKind::Other,
                    "streamed request bodies are not supported",
                ))
            }
        };
        let io = |e: reqwest::Error| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            azure_core::Error::with_error(kind, e.without_url(), "identity request failed")
        };
        let resp = req.send().await.map_err(io)?;
        let status = resp.status().as_u16();
        let mut headers = Headers::new();
        for (name, value) in resp.headers() {
            if let Ok(v) = value.to_str() {
                headers.insert(name.as_str().to_owned(), v.to_owned());
            }
        }
        let body = read_body(resp, self.max_body).await.map_err(|e| {
            azure_core::Error::with_message(ErrorKind::Io, format!("identity response: {e}"))
        })?;
        Ok(AsyncRawResponse::from_bytes(status.into(), headers, body))
    }
}

/// A fixed bearer token (`AZURE_ACCESS_TOKEN`): for tests and CI only. `Debug` redacts it.
struct StaticToken(Secret);

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.secret().to_owned(),
            OffsetDateTime::now_utc() + Duration::hours(1),
        ))
    }
}

/// The credential a config selects, and its name for provenance and errors.
pub(crate) struct Chosen {
    pub credential: Arc<dyn TokenCredential>,
    pub kind: &'static str,
}

/// Picks the credential, in this order: `AZURE_ACCESS_TOKEN` (tests only), a client secret
/// (`AZURE_CLIENT_SECRET` with `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`), workload identity
/// (`AZURE_FEDERATED_TOKEN_FILE` with the same two, as the AKS webhook injects them), else the
/// managed identity of the host (user-assigned when `AZURE_CLIENT_ID` is set).
pub(crate) fn choose(
    config: &AzureConfig,
    client: &reqwest::Client,
) -> Result<Chosen, ConfigError> {
    if let Some(token) = &config.access_token {
        return Ok(Chosen {
            credential: Arc::new(StaticToken(Secret::new(token.clone()))),
            kind: "AZURE_ACCESS_TOKEN",
        });
    }
    let client_options = || ClientOptions {
        transport: Some(Transport::new(Arc::new(ReqwestTransport {
            client: client.clone(),
            max_body: config.max_response_bytes,
        }))),
        ..Default::default()
    };
    let need = |value: &Option<String>, setting: &str, why: &str| {
        value
            .clone()
            .ok_or_else(|| ConfigError::invalid(setting, format!("required with {why}")))
    };
    let refused = |setting: &str, e: azure_core::Error| ConfigError::invalid(setting, one_line(&e));
    if let Some(secret) = &config.client_secret {
        let tenant = need(&config.tenant_id, "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET")?;
        let client_id = need(&config.client_id, "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")?;
        let credential = ClientSecretCredential::new(
            &tenant,
            client_id,
            Secret::new(secret.clone()),
            Some(ClientSecretCredentialOptions {
                client_options: client_options(),
            }),
        )
        .map_err(|e| refused("AZURE_CLIENT_SECRET", e))?;
        return Ok(Chosen {
            credential,
            kind: "ClientSecretCredential",
        });
    }
    if let Some(file) = &config.federated_token_file {
        let tenant = need(
            &config.tenant_id,
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
        )?;
        let client_id = need(
            &config.client_id,
            "AZURE_CLIENT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
        )?;
        let credential = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: client_options(),
            },
            client_id: Some(client_id),
            tenant_id: Some(tenant),
            token_file_path: Some(file.clone()),
        }))
        .map_err(|e| refused("AZURE_FEDERATED_TOKEN_FILE", e))?;
        return Ok(Chosen {
            credential,
            kind: "WorkloadIdentityCredential",
        });
    }
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: config.client_id.clone().map(UserAssignedId::ClientId),
        client_options: client_options(),
    }))
    .map_err(|e| refused("AZURE_CLIENT_ID", e))?;
    Ok(Chosen {
        credential,
        kind: "ManagedIdentityCredential",
    })
}

/// An azure_core error on one line (its messages may carry a troubleshooting link on a second).
pub(crate) fn one_line(e: &azure_core::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who the token says we are: `appid=<app>,oid=<object>` from the JWT's claims, or `None` when
/// the token is not a JWT. Only the (unsigned, public) claims are read; the token is not kept.
pub(crate) fn principal(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&base64url(payload)?).ok()?;
    let parts: Vec<String> = ["appid", "azp", "oid"]
        .iter()
        .filter_map(|c| claims.get(*c)?.as_str().map(|v| format!("{c}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Decodes unpadded (or padded) base64url.
fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn principal_comes_from_the_claims_only() {
        // {"alg":"none"} . {"appid":"app-1","oid":"obj-2","tid":"t"} . sig
        let jwt =
            "eyJhbGciOiJub25lIn0.eyJhcHBpZCI6ImFwcC0xIiwib2lkIjoib2JqLTIiLCJ0aWQiOiJ0In0.c2ln";
        assert_eq!(principal(jwt).as_deref(), Some("appid=app-1,oid=obj-2"));
        assert_eq!(principal("opaque-token"), None);
        assert_eq!(principal("a.!!!.c"), None);
        assert_eq!(base64url("aGk").unwrap(), b"hi");
        assert_eq!(base64url("aGk=").unwrap(), b"hi");
    }

    #[tokio::test]
    async fn the_choice_follows_the_settings() {
        let client = reqwest::Client::new();
        let mut c = AzureConfig::new("tenant-scope");
        c.access_token = Some("t0k3n".into());
        let chosen = choose(&c, &client).unwrap();
        assert_eq!(chosen.kind, "AZURE_ACCESS_TOKEN");
        assert!(!format!("{:?}", chosen.credential).contains("t0k3n"));
        let got = chosen
            .credential
            .get_token(&["https://management.azure.com/.default"], None)
            .await
            .unwrap();
        assert_eq!(got.token.secret(), "t0k3n");

        let mut c = AzureConfig::new("tenant-scope");
        c.client_secret = Some("s3cr3t".into());
        let e = choose(&c, &client).err().unwrap();
        assert_eq!(
            e.to_string(),
            "AZURE_TENANT_ID: required with AZURE_CLIENT_SECRET"
        );
        c.tenant_id = Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into());
        c.client_id = Some("00000000-0000-0000-0000-000000000001".into());
        assert_eq!(choose(&c, &client).unwrap().kind, "ClientSecretCredential");

        let mut c = AzureConfig::new("tenant-scope");
        c.federated_token_file = Some("/var/run/secrets/azure/tokens/azure-identity-token".into());
        let e = choose(&c, &client).err().unwrap();
        assert!(e.to_string().starts_with("AZURE_TENANT_ID: "), "{e}");
        c.tenant_id = Some("72f988bf-86f1-41af-91ab-2d7cd011db47".into());
        c.client_id = Some("00000000-0000-0000-0000-000000000001".into());
        let e = choose(&c, &client).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("AZURE_FEDERATED_TOKEN_FILE: failed to read"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("azure-identity-token");
        std::fs::write(&file, "projected-service-account-token").unwrap();
        c.federated_token_file = Some(file);
        assert_eq!(
            choose(&c, &client).unwrap().kind,
            "WorkloadIdentityCredential"
        );

        let c = AzureConfig::new("tenant-scope");
        assert_eq!(
            choose(&c, &client).unwrap().kind,
            "ManagedIdentityCredential"
        );
    }
}
