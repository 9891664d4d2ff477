//! Property tests of what the client reads from the outside: answer bodies of any shape, the
//! duration and timestamp formats Graph writes, OData literals and the ids put into URLs.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::answer::{Body, judge};
use super::error::{Cause, Source, classify_graph};
use super::http::request_url;
use super::model::{
    Collection, ServicePrincipal, SynchronizationJob, odata_quote, parse_graph_time, parse_iso_duration,
};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, ..ProptestConfig::default() }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("value".to_string()),
                    Just("error".to_string()),
                    Just("code".to_string()),
                    Just("message".to_string()),
                    Just("id".to_string()),
                    Just("templateId".to_string()),
                    Just("schedule".to_string()),
                    Just("status".to_string()),
                    Just("innerError".to_string()),
                    Just("@odata.nextLink".to_string()),
                    "[a-zA-Z@.]{1,10}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bodies as they come: JSON of any shape, raw bytes, gateway pages, cut-off envelopes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let envelope = r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist","innerError":{"request-id":"r-1"}}}"#;
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..256),
        "<html><body><h1>[ -~]{0,40}</h1></body></html>".prop_map(String::into_bytes),
        (0..envelope.len()).prop_map(move |cut| envelope.as_bytes()[..cut].to_vec()),
        Just(Vec::new()),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    let value = "[ -~]{0,30}";
    (
        prop::option::of(value),
        prop::option::of(prop_oneof![Just("text/html; charset=utf-8".to_string()), value.boxed()]),
        prop::option::of(prop_oneof![(0u64..100_000).prop_map(|s| s.to_string()), value.boxed()]),
    )
        .prop_map(|(request_id, content_type, retry_after)| {
            let mut h = HeaderMap::new();
            for (name, v) in [("request-id", request_id), ("content-type", content_type), ("retry-after", retry_after)]
            {
                if let Some(v) = v.and_then(|v| HeaderValue::from_str(&v).ok()) {
                    h.insert(HeaderName::from_static(name), v);
                }
            }
            h
        })
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_800_000_000).unwrap()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_answer_is_a_success_or_a_typed_error(status in 100u16..600, headers in headers(), body in body()) {
        let judged = judge("jobs.list", status, &headers, Body::Whole(Bytes::from(body.clone())), now());
        if (200..300).contains(&status) {
            let ok = judged.unwrap();
            prop_assert_eq!(&ok.body[..], &body[..]);
            // Decoding any body as what a call expects is a value or an unusable answer.
            for e in [
                ok.decode::<Collection<SynchronizationJob>>("jobs.list").err(),
                ok.decode::<ServicePrincipal>("servicePrincipals.get").err(),
                ok.decode::<Value>("x").err(),
            ].into_iter().flatten() {
                prop_assert_eq!((e.cause, e.source, e.status), (Cause::UnusableAnswer, Source::Graph, Some(status)));
                prop_assert!(!e.not_processed(), "a 2xx may have done the work");
                prop_assert!(e.message.starts_with("cannot read the response ("), "{}", e.message);
                prop_assert!(!e.message.contains("<html>"), "{}", e.message);
            }
        } else {
            let e = judged.unwrap_err();
            prop_assert_eq!((e.cause, e.source, e.status), (Cause::ErrorStatus, Source::Graph, Some(status)));
            prop_assert_eq!(e.kind, classify_graph(status, e.retry_after));
            prop_assert!(e.message.len() <= 1024 + 80, "{}", e.message.len());
            prop_assert!(!e.message.contains("<html>"), "a page is described, not repeated: {}", e.message);
            if body.is_empty() {
                prop_assert_eq!(e.message.as_str(), "");
            }
        }
    }

    #[test]
    fn a_body_past_the_cap_is_never_a_success(status in 100u16..600, headers in headers()) {
        let judged = judge("jobs.list", status, &headers, Body::TooLarge { limit: 16 << 20 }, now());
        let e = judged.unwrap_err();
        prop_assert_eq!(e.status, Some(status));
        if (200..300).contains(&status) {
            prop_assert_eq!(e.cause, Cause::UnusableAnswer);
            prop_assert!(e.message.contains("larger than the 16 MiB"), "{}", e.message);
        } else {
            prop_assert_eq!((e.cause, e.code), (Cause::ErrorStatus, None));
        }
    }

    #[test]
    fn durations_never_panic(s in "P?[0-9WDTHMS.,]{0,24}|.{0,24}") {
        let _ = parse_iso_duration(&s);
    }

    #[test]
    fn durations_read_what_dotnet_writes(
        w in 0u64..100, d in 0u64..100_000, h in 0u64..24, m in 0u64..60, s in 0u64..60, ms in 0u64..1000,
    ) {
        let want = Duration::from_secs(w * 604_800 + d * 86_400 + h * 3600 + m * 60 + s) + Duration::from_millis(ms);
        let got = parse_iso_duration(&format!("P{w}W{d}DT{h}H{m}M{s}.{ms:03}S")).unwrap();
        let diff = got.abs_diff(want);
        prop_assert!(diff < Duration::from_micros(1), "{got:?} vs {want:?}");
        prop_assert_eq!(parse_iso_duration(&format!("P{d}D")), Some(Duration::from_secs(d * 86_400)));
        prop_assert_eq!(parse_iso_duration(&format!("PT{m}M")), Some(Duration::from_secs(m * 60)));
        // Units out of order, or a number without a unit, are not durations.
        prop_assert_eq!(parse_iso_duration(&format!("PT{s}S{m}M")), None);
        prop_assert_eq!(parse_iso_duration(&format!("PT{s}")), None);
    }

    #[test]
    fn timestamps_never_panic(s in ".{0,40}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{0,20}Z?") {
        let _ = parse_graph_time(&s);
    }

    #[test]
    fn timestamps_read_with_or_without_a_zone(secs in -62_000_000_000i64 + 1..253_402_300_799, nanos in 0i32..1_000_000_000) {
        let t = jiff::Timestamp::new(secs, nanos).unwrap();
        prop_assert_eq!(parse_graph_time(&t.to_string()), Some(t));
        let bare = t.to_string();
        prop_assert_eq!(parse_graph_time(bare.trim_end_matches('Z')), Some(t));
    }

    #[test]
    fn the_never_sentinel_is_no_time(frac in "(\\.[0-9]{1,7})?", zone in "Z?") {
        let never = format!("0001-01-01T00:00:00{frac}{zone}");
        prop_assert_eq!(parse_graph_time(&never), None);
    }

    #[test]
    fn odata_literals_read_back_as_the_string(s in ".{0,40}") {
        let quoted = odata_quote(&s);
        let inner = quoted.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')).unwrap();
        // Inside the literal every quote is doubled, so none can end it early.
        prop_assert!(inner.replace("''", "").find('\'').is_none(), "{quoted}");
        prop_assert_eq!(inner.replace("''", "'"), s);
    }

    #[test]
    fn every_id_stays_one_path_segment(ids in prop::collection::vec("[^\\p{Cc}]{1,20}", 1..4), q in ".{0,20}") {
        prop_assume!(ids.iter().all(|s| s != "." && s != ".." && !s.chars().any(char::is_control)));
        for base in ["http://127.0.0.1:9/", "http://127.0.0.1:9", "http://127.0.0.1:9/graph/"] {
            let base = url::Url::parse(base).unwrap();
            let url = request_url(&base, &ids, &[("$filter", q.clone())]).unwrap();
            let segments: Vec<String> = url.path_segments().unwrap().map(percent_decode).collect();
            let prefix: Vec<String> = base.path_segments().unwrap().filter(|s| !s.is_empty()).map(str::to_string).collect();
            let mut want = prefix;
            want.push("beta".into());
            want.extend(ids.iter().cloned());
            prop_assert_eq!(segments, want, "{}", url);
            prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
            let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            prop_assert_eq!(query, vec![("$filter".to_string(), q.clone())]);
        }
    }

    #[test]
    fn ids_that_would_name_another_resource_are_refused(
        before in prop::collection::vec("[a-z]{1,5}", 0..2),
        bad in prop_oneof![Just(String::new()), Just(".".into()), Just("..".into()), "[a-z.]{0,3}[\t\n\r\x00-\x1f\x7f][a-z.]{0,3}"],
    ) {
        let mut ids = before;
        ids.push(bad);
        let base = url::Url::parse("http://127.0.0.1:9/").unwrap();
        let e = request_url(&base, &ids, &[]).unwrap_err();
        prop_assert!(e.contains("cannot put the id"), "{e}");
    }
}

/// Percent-decoding as a server reads a path segment.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
