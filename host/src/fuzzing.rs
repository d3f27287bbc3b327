//! Entry points for the fuzz targets (`fuzz/`) and for the short property runs of the same
//! code in the test suite: the intake body decoder, the plug-in output checks and the
//! Open311 form and XML paths. Each must never panic, whatever the bytes.

use crate::directory::Directory;

/// Decodes `body` as `POST /v1/cases` does (JSON, unknown fields refused) and checks the
/// case against `dir` as intake does. Returns whether it was accepted.
pub fn intake_body(dir: &Directory, body: &[u8]) -> bool {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Ok(new) = serde_path_to_error::deserialize::<_, crate::intake::NewCase>(&mut de) else {
        return false;
    };
    if de.end().is_err() {
        return false;
    }
    crate::intake::validate(dir, &new, "c-0000000001".into(), "k".into(), "fuzz", 0).is_ok()
}

/// Reads `json` as each hook's decision and checks it as the host checks a plug-in's output
/// for a case of `district`; returns how many readings were valid.
pub fn plugin_output(dir: &Directory, district: &str, json: &[u8]) -> usize {
    crate::runtime::fuzz_validate(dir, district, json)
}

/// Reads `body` as the Open311 POST reads a form and renders a request built from it as
/// XML; returns the XML, which must be well-formed.
pub fn open311_form(dir: &Directory, body: &[u8]) -> Option<String> {
    crate::api::fuzz_form(dir, body)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn dir() -> Directory {
        crate::directory::sample_city()
    }

    fn well_formed(xml: &str) -> bool {
        // Every character XML 1.0 allows, and tags that open and close in order.
        if xml
            .chars()
            .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
        {
            return false;
        }
        let body = xml.split_once("?>").map_or(xml, |(_, b)| b);
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = body;
        while let Some(i) = rest.find('<') {
            let text = &rest[..i];
            if text.contains('>') {
                return false;
            }
            let Some(j) = rest[i..].find('>') else {
                return false;
            };
            let tag = &rest[i + 1..i + j];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                stack.push(tag);
            }
            rest = &rest[i + j + 1..];
        }
        stack.is_empty() && !rest.contains('>')
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn intake_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            intake_body(&dir(), &body);
        }

        #[test]
        fn intake_json_never_panics(s in r#"\{("(district|category|location|caller|flags|dispute|description|kind|urgent)":(\"[a-z/0-9\-]{0,20}\"|\[\]|\{\}|true|null|1),?){0,6}\}"#) {
            intake_body(&dir(), s.as_bytes());
        }

        #[test]
        fn plugin_outputs_never_panic(s in r#"\{("(lead|co_handlers|reasons|deadlines|admissibility|grid_admissible|mediation|actions)":(\"[a-z/0-9\-]{0,30}\"|\[("[a-z/0-9\-]{0,30}",?){0,4}\]|\{\}|null|1),?){0,6}\}"#) {
            plugin_output(&dir(), "jiyang", s.as_bytes());
        }

        #[test]
        fn open311_forms_render_well_formed_xml(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Some(xml) = open311_form(&dir(), &body) {
                prop_assert!(well_formed(&xml), "{xml}");
            }
        }

        #[test]
        fn open311_texts_with_controls_render_well_formed_xml(v in "[\\x00-\\x1f<>&\"'a-z%]{0,40}") {
            let body = format!("service_code=noise&description={}", percent_encoding::utf8_percent_encode(&v, percent_encoding::NON_ALPHANUMERIC));
            let xml = open311_form(&dir(), body.as_bytes()).expect("a valid form");
            prop_assert!(well_formed(&xml), "{xml}");
        }
    }

    #[test]
    fn the_decoders_accept_what_they_should() {
        let d = dir();
        assert!(intake_body(
            &d,
            br#"{"district":"jiyang","category":"noise","location":{"grid":"jiyang/yuehe/grid-01"}}"#
        ));
        assert!(!intake_body(
            &d,
            br#"{"district":"jiyang","category":"noise","status":"closed"}"#
        ));
        assert_eq!(
            plugin_output(&d, "jiyang", br#"{"lead":"jiyang/yuehe/grid-01","co_handlers":[],"deadlines":{"sign_off":null,"first_contact":null,"resolution":null,"warning_percent":null},"reasons":["route.grid"]}"#),
            1
        );
        let xml = open311_form(&d, b"service_code=noise&description=%3Cscript%3E%00").unwrap();
        assert!(well_formed(&xml), "{xml}");
        assert!(!well_formed("<a>\u{0}</a>") && !well_formed("<a><b></a>"));
    }
}
