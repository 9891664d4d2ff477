//! National clouds: one table of login authority, Graph root and token scope (reference §6), and
//! the operator-level overrides that point both at the simulator.

use url::Url;

/// The national clouds of Microsoft Graph. The profile's `spec.cloud` converts into this (in
/// `api`), so the client does not depend on the CRD types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NationalCloud {
    /// Global, including Microsoft 365 GCC.
    #[default]
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsGovDoD,
    /// China, operated by 21Vianet.
    China,
}

impl NationalCloud {
    /// Identity platform authority host and Graph root (reference §6).
    fn hosts(self) -> (&'static str, &'static str) {
        match self {
            Self::Global => ("https://login.microsoftonline.com/", "https://graph.microsoft.com/"),
            Self::UsGov => ("https://login.microsoftonline.us/", "https://graph.microsoft.us/"),
            Self::UsGovDoD => ("https://login.microsoftonline.us/", "https://dod-graph.microsoft.us/"),
            Self::China => ("https://login.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn/"),
        }
    }
}

/// Where tokens come from and where Graph calls go, for one cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Identity platform authority host, e.g. `https://login.microsoftonline.com/`.
    pub login: Url,
    /// Graph root, e.g. `https://graph.microsoft.com/`.
    pub graph: Url,
    /// Scope of the client-credentials request. Tokens do not work across clouds, so the scope
    /// stays the cloud's own even when the URLs are overridden.
    pub scope: String,
}

/// Operator-level replacements for the table's URLs (flags `--graph-url` and `--login-url`).
/// Never per profile: a profile must not be able to send its credentials anywhere else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub graph: Option<Url>,
    pub login: Option<Url>,
}

impl Overrides {
    pub fn endpoints(&self, cloud: NationalCloud) -> Endpoints {
        let (login, graph) = cloud.hosts();
        Endpoints {
            login: self.login.clone().map(with_trailing_slash).unwrap_or_else(|| parse_static(login)),
            graph: self.graph.clone().map(with_trailing_slash).unwrap_or_else(|| parse_static(graph)),
            scope: format!("{graph}.default"),
        }
    }

    /// The first override that cannot be a base for request paths (e.g. `mailto:x`): every call
    /// through it would fail, so the client refuses it when it is built.
    pub fn unusable(&self) -> Option<&Url> {
        [&self.graph, &self.login].into_iter().flatten().find(|u| u.cannot_be_a_base())
    }
}

// The match holds literals known to parse; the fallback keeps this total without a panic path.
fn parse_static(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|_| Url::parse("https://invalid.invalid/").expect("literal URL"))
}

/// `Url::join` drops the last path segment unless the base ends in `/` (AZURE_AUTHORITY_HOST
/// has one, a user's flag may not).
pub fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cloud_has_its_own_endpoints_and_scope() {
        let o = Overrides::default();
        let g = o.endpoints(NationalCloud::Global);
        assert_eq!(g.login.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(g.scope, "https://graph.microsoft.com/.default");
        let dod = o.endpoints(NationalCloud::UsGovDoD);
        assert_eq!(dod.login.as_str(), "https://login.microsoftonline.us/");
        assert_eq!(dod.graph.as_str(), "https://dod-graph.microsoft.us/");
        assert_eq!(dod.scope, "https://dod-graph.microsoft.us/.default");
        assert_eq!(o.endpoints(NationalCloud::UsGov).scope, "https://graph.microsoft.us/.default");
        assert_eq!(o.endpoints(NationalCloud::China).scope, "https://microsoftgraph.chinacloudapi.cn/.default");
    }

    #[test]
    fn overrides_replace_urls_but_keep_the_clouds_scope() {
        let o = Overrides {
            graph: Some(Url::parse("http://127.0.0.1:8080").unwrap()),
            login: Some(Url::parse("http://127.0.0.1:8080/login").unwrap()),
        };
        let e = o.endpoints(NationalCloud::China);
        assert_eq!(e.graph.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(e.login.as_str(), "http://127.0.0.1:8080/login/");
        assert_eq!(e.scope, "https://microsoftgraph.chinacloudapi.cn/.default");
    }

    #[test]
    fn only_urls_that_take_a_path_are_usable_overrides() {
        let ok = Overrides { graph: Some(Url::parse("http://127.0.0.1:8080").unwrap()), login: None };
        assert_eq!(ok.unusable(), None);
        let bad = Overrides { login: Some(Url::parse("mailto:someone@example.com").unwrap()), ..ok };
        assert_eq!(bad.unusable().map(Url::as_str), Some("mailto:someone@example.com"));
    }
}
