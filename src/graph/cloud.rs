//! National clouds: one table of login authority, Graph root and token scope (reference §6), and
//! the operator-level overrides that point both at the simulator.

use url::Url;

use crate::api::Cloud;

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

/// (cloud, authority host, Graph root). The scope is `<graph root>/.default`.
const TABLE: [(Cloud, &str, &str); 4] = [
    (Cloud::Global, "https://login.microsoftonline.com/", "https://graph.microsoft.com/"),
    (Cloud::UsGov, "https://login.microsoftonline.us/", "https://graph.microsoft.us/"),
    (Cloud::UsGovDoD, "https://login.microsoftonline.us/", "https://dod-graph.microsoft.us/"),
    (Cloud::China, "https://login.chinacloudapi.cn/", "https://microsoftgraph.chinacloudapi.cn/"),
];

/// Operator-level replacements for the table's URLs (flags `--graph-url` and `--login-url`).
/// Never per profile: a profile must not be able to send its credentials anywhere else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub graph: Option<Url>,
    pub login: Option<Url>,
}

impl Overrides {
    pub fn endpoints(&self, cloud: Cloud) -> Endpoints {
        let (login, graph) =
            TABLE.iter().find(|(c, _, _)| *c == cloud).map(|(_, l, g)| (*l, *g)).unwrap_or((TABLE[0].1, TABLE[0].2));
        let scope = format!("{}.default", graph);
        Endpoints {
            login: self.login.clone().map(with_trailing_slash).unwrap_or_else(|| parse_static(login)),
            graph: self.graph.clone().map(with_trailing_slash).unwrap_or_else(|| parse_static(graph)),
            scope,
        }
    }
}

// The table holds literals known to parse; the fallback keeps this total without a panic path.
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
        let g = o.endpoints(Cloud::Global);
        assert_eq!(g.login.as_str(), "https://login.microsoftonline.com/");
        assert_eq!(g.scope, "https://graph.microsoft.com/.default");
        let dod = o.endpoints(Cloud::UsGovDoD);
        assert_eq!(dod.login.as_str(), "https://login.microsoftonline.us/");
        assert_eq!(dod.graph.as_str(), "https://dod-graph.microsoft.us/");
        assert_eq!(dod.scope, "https://dod-graph.microsoft.us/.default");
        assert_eq!(o.endpoints(Cloud::UsGov).scope, "https://graph.microsoft.us/.default");
        assert_eq!(o.endpoints(Cloud::China).scope, "https://microsoftgraph.chinacloudapi.cn/.default");
    }

    #[test]
    fn overrides_replace_urls_but_keep_the_clouds_scope() {
        let o = Overrides {
            graph: Some(Url::parse("http://127.0.0.1:8080").unwrap()),
            login: Some(Url::parse("http://127.0.0.1:8080/login").unwrap()),
        };
        let e = o.endpoints(Cloud::China);
        assert_eq!(e.graph.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(e.login.as_str(), "http://127.0.0.1:8080/login/");
        assert_eq!(e.scope, "https://microsoftgraph.chinacloudapi.cn/.default");
    }
}
