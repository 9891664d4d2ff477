//! Turning `spec.credentials` into a Graph credential: a Secret in the profile's namespace, or the
//! operator pod's federated token when the operator allows it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::SecretString;

use super::reason::Problem;
use crate::api::Credentials;
use crate::graph::Credential;

pub const CLIENT_ID_KEY: &str = "clientId";
pub const CLIENT_SECRET_KEY: &str = "clientSecret";

/// The longest value read from the Secret: Entra client secrets are about 40 characters and
/// client ids 36, so 4 KiB is generous, and a 1 MiB value (a certificate bundle or a kubeconfig
/// under the wrong key) is refused before it is decoded or sent anywhere.
pub const MAX_VALUE: usize = 4096;

/// Operator-level settings for workload identity (from the environment the Azure Workload
/// Identity webhook injects, and a flag that allows profiles to use it).
#[derive(Clone, Debug, Default)]
pub struct WorkloadIdentityConfig {
    pub allowed: bool,
    /// AZURE_CLIENT_ID: used when a profile names no client id.
    pub client_id: Option<String>,
    /// AZURE_FEDERATED_TOKEN_FILE.
    pub token_file: Option<PathBuf>,
}

impl WorkloadIdentityConfig {
    pub fn from_env(allowed: bool) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            allowed,
            client_id: var("AZURE_CLIENT_ID"),
            token_file: var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
        }
    }
}

/// The Secret's keys as a credential, or what is wrong with them. Pure, so every case is tested.
pub fn from_secret_data(
    namespace: &str,
    name: &str,
    data: Option<&BTreeMap<String, ByteString>>,
) -> Result<Credential, Problem> {
    let read = |key: &str| -> Result<String, Problem> {
        let bytes = data.and_then(|d| d.get(key)).map(|b| b.0.as_slice()).unwrap_or_default();
        if bytes.len() > MAX_VALUE {
            return Err(Problem::secret_too_long(namespace, name, key, MAX_VALUE));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Problem::secret_not_text(namespace, name, key))?;
        // `kubectl create secret --from-file` keeps the file's trailing newline.
        let text = text.trim();
        if text.is_empty() {
            return Err(Problem::secret_lacks(namespace, name, key));
        }
        // Entra's secrets and client ids are printable ASCII. A line break inside is a file of
        // several lines (two secrets, a comment, a secret and its expiry), and sending it would
        // fail at the token endpoint with a message that does not say which key is wrong.
        if text.chars().any(char::is_control) {
            return Err(Problem::secret_not_one_line(namespace, name, key));
        }
        Ok(text.to_string())
    };
    let client_id = read(CLIENT_ID_KEY)?;
    let secret = read(CLIENT_SECRET_KEY)?;
    Ok(Credential::ClientSecret { client_id, secret: SecretString::from(secret) })
}

/// The credential for a profile. `Ok(Err(problem))` is a user's mistake to report; `Err` is an
/// apiserver failure to retry.
pub async fn resolve(
    secrets: &Api<Secret>,
    namespace: &str,
    credentials: &Credentials,
    wi: &WorkloadIdentityConfig,
) -> Result<Result<Credential, Problem>, kube::Error> {
    if let Some(r) = &credentials.secret_ref {
        return Ok(match secrets.get_opt(&r.name).await? {
            None => Err(Problem::secret_not_found(namespace, &r.name)),
            Some(s) => from_secret_data(namespace, &r.name, s.data.as_ref()),
        });
    }
    let Some(w) = &credentials.workload_identity else {
        return Ok(Err(Problem::no_credentials()));
    };
    Ok(federated(w.client_id.as_deref(), wi))
}

fn federated(client_id: Option<&str>, wi: &WorkloadIdentityConfig) -> Result<Credential, Problem> {
    if !wi.allowed {
        return Err(Problem::workload_identity_not_allowed());
    }
    let token_file = wi.token_file.clone().ok_or_else(Problem::no_federated_token)?;
    let client_id =
        client_id.map(str::to_string).or_else(|| wi.client_id.clone()).ok_or_else(Problem::no_workload_client_id)?;
    Ok(Credential::Federated { client_id, token_file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect()
    }

    #[test]
    fn a_complete_secret_becomes_a_client_secret_credential() {
        let d = data(&[("clientId", b"abc\n"), ("clientSecret", b"s3cr3t\n")]);
        let c = from_secret_data("ns", "creds", Some(&d)).unwrap();
        assert_eq!(c.client_id(), "abc");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn missing_or_empty_keys_say_which() {
        let e = from_secret_data("ns", "creds", Some(&data(&[("clientId", b"abc")]))).unwrap_err();
        assert_eq!(e.reason, super::super::reason::Reason::SecretInvalid);
        assert!(e.message.contains("ns/creds has no clientSecret"), "{}", e.message);
        let e = from_secret_data("ns", "creds", None).unwrap_err();
        assert!(e.message.contains("has no clientId"));
        let e =
            from_secret_data("ns", "creds", Some(&data(&[("clientId", b" "), ("clientSecret", b"x")]))).unwrap_err();
        assert!(e.message.contains("has no clientId"));
        let e = from_secret_data("ns", "creds", Some(&data(&[("clientId", &[0xff, 0xfe]), ("clientSecret", b"x")])))
            .unwrap_err();
        assert!(e.message.contains("not UTF-8"));
    }

    /// Hostile Secrets past admission: each is a SecretInvalid problem that names the key and
    /// never the value.
    #[test]
    fn garbage_huge_and_multi_line_values_are_refused_without_showing_them() {
        let id: &[u8] = b"aaaaaaaa-bbbb-cccc-dddd-000000000001";
        let secret = "Qx8~abcdefghijklmnopqrstuvwxyz0123456789";
        let huge = format!("{secret}{}", "A".repeat(1 << 20));
        let garbage: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (garbage, "clientSecret", "not UTF-8"),
            (huge.clone().into_bytes(), "clientSecret", "longer than 4096 bytes"),
            (format!("{secret}\nQx8~second-line-value").into_bytes(), "clientSecret", "line break"),
            (format!("{secret}\r\nexpires 2027-01-01\n").into_bytes(), "clientSecret", "line break"),
            (format!("{secret}\0").into_bytes(), "clientSecret", "control character"),
        ];
        for (value, key, want) in cases {
            let d = data(&[("clientId", id), ("clientSecret", &value)]);
            let e = from_secret_data("ns", "creds", Some(&d)).unwrap_err();
            assert_eq!(e.reason, super::super::reason::Reason::SecretInvalid);
            assert!(e.message.contains(&format!("key {key}")) && e.message.contains(want), "{}", e.message);
            assert!(!e.message.contains(secret) && !e.message.contains("second-line"), "{}", e.message);
            assert!(e.message.len() < 300, "{}", e.message.len());
        }
        let d = data(&[("clientId", huge.as_bytes()), ("clientSecret", secret.as_bytes())]);
        assert!(from_secret_data("ns", "creds", Some(&d)).unwrap_err().message.contains("key clientId is longer"));
        let d = data(&[("clientId", b"aaaa\nbbbb"), ("clientSecret", secret.as_bytes())]);
        assert!(from_secret_data("ns", "creds", Some(&d)).unwrap_err().message.contains("key clientId contains"));
        // A trailing newline (from `--from-file`) and surrounding spaces are still trimmed.
        let d = data(&[("clientId", id), ("clientSecret", format!("  {secret}\r\n").as_bytes())]);
        let c = from_secret_data("ns", "creds", Some(&d)).unwrap();
        let Credential::ClientSecret { secret: got, .. } = c else { panic!("a client secret") };
        assert_eq!(secrecy::ExposeSecret::expose_secret(&got), secret);
        // Exactly at the limit is read.
        let at_limit = "B".repeat(MAX_VALUE);
        let d = data(&[("clientId", id), ("clientSecret", at_limit.as_bytes())]);
        assert!(from_secret_data("ns", "creds", Some(&d)).is_ok());
    }

    #[test]
    fn workload_identity_needs_permission_a_token_file_and_a_client_id() {
        let mut wi = WorkloadIdentityConfig::default();
        assert_eq!(federated(None, &wi).unwrap_err().reason, super::super::reason::Reason::WorkloadIdentityNotAllowed);
        wi.allowed = true;
        assert_eq!(federated(None, &wi).unwrap_err().reason, super::super::reason::Reason::WorkloadIdentityUnavailable);
        wi.token_file = Some("/var/run/secrets/azure/tokens/azure-identity-token".into());
        assert!(federated(None, &wi).unwrap_err().message.contains("no client id"));
        wi.client_id = Some("pod-client".into());
        assert_eq!(federated(None, &wi).unwrap().client_id(), "pod-client");
        assert_eq!(federated(Some("profile-client"), &wi).unwrap().client_id(), "profile-client");
    }
}
