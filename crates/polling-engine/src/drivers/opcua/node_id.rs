//! NodeIds in the standard string form (OPC UA Part 6, 5.3.1.10): `ns=2;s=Line1.Temp`,
//! `ns=3;i=1001`, `i=2258` (namespace 0), `ns=1;g=<guid>`, `ns=1;b=<base64>`, and
//! `nsu=<namespace uri>;s=...`, whose index the server's NamespaceArray gives at connect.

use std::str::FromStr;

use opcua::types::{ByteString, Guid, Identifier, NodeId, UAString};

/// Where a node's namespace is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// `ns=N;` (or none: 0).
    Index(u16),
    /// `nsu=URI;`: resolved to an index once connected.
    Uri(String),
}

/// A parsed NodeId, namespace not yet resolved when given by URI.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeAddress {
    /// `ns=` or `nsu=`.
    pub namespace: Namespace,
    /// `i=`, `s=`, `g=` or `b=`.
    pub identifier: Identifier,
}

impl NodeAddress {
    /// The NodeId in namespace `index` (the URI's index once resolved).
    pub fn node_id(&self, index: u16) -> NodeId {
        NodeId::new(index, self.identifier.clone())
    }
}

impl FromStr for NodeAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (namespace, rest) = if let Some(rest) = text.strip_prefix("nsu=") {
            let Some((uri, rest)) = rest.split_once(';') else {
                return Err(
                    "nsu=<uri> must be followed by ; and an identifier (i=, s=, g= or b=)".into(),
                );
            };
            if uri.is_empty() {
                return Err("nsu= needs a namespace URI".into());
            }
            // Part 6 escapes ';' and '%' in the URI.
            let uri = uri
                .replace("%3b", ";")
                .replace("%3B", ";")
                .replace("%25", "%");
            (Namespace::Uri(uri), rest)
        } else if let Some(rest) = text.strip_prefix("ns=") {
            let Some((index, rest)) = rest.split_once(';') else {
                return Err(
                    "ns=<index> must be followed by ; and an identifier (i=, s=, g= or b=)".into(),
                );
            };
            let index = index.parse::<u16>().map_err(|_| {
                format!("ns={index}: the namespace index must be a whole number from 0 to 65535")
            })?;
            (Namespace::Index(index), rest)
        } else {
            (Namespace::Index(0), text)
        };
        let identifier = identifier(rest)?;
        Ok(NodeAddress {
            namespace,
            identifier,
        })
    }
}

fn identifier(text: &str) -> Result<Identifier, String> {
    let (kind, value) = match text.split_at_checked(2) {
        Some((kind @ ("i=" | "s=" | "g=" | "b="), value)) => (kind, value),
        _ => {
            return Err(format!(
                "{text:?} is not an identifier: expected i=<number>, s=<string>, g=<guid> or \
                 b=<base64> (e.g. ns=2;s=Line1.Temperature)"
            ))
        }
    };
    match kind {
        "i=" => value.parse::<u32>().map(Identifier::Numeric).map_err(|_| {
            format!("i={value}: a numeric identifier is a whole number from 0 to 4294967295")
        }),
        "s=" if value.is_empty() => Err("s= needs a string identifier".into()),
        "s=" => Ok(Identifier::String(UAString::from(value))),
        "g=" => Guid::from_str(value).map(Identifier::Guid).map_err(|_| {
            format!("g={value}: not a GUID (e.g. 72962b91-fa75-4ae6-8d28-b404dc7daf63)")
        }),
        _ => ByteString::from_base64(value)
            .filter(|b| !b.is_null())
            .map(Identifier::ByteString)
            .ok_or_else(|| format!("b={value}: not base64")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NodeAddress, String> {
        text.parse()
    }

    #[test]
    fn the_standard_forms_parse() {
        let a = parse("ns=2;s=Line1.Temperature").unwrap();
        assert_eq!(a.namespace, Namespace::Index(2));
        assert_eq!(a.node_id(2), NodeId::new(2, "Line1.Temperature"));
        let a = parse("ns=3;i=1001").unwrap();
        assert_eq!(a.node_id(3), NodeId::new(3, 1001u32));
        assert_eq!(parse("i=2258").unwrap().namespace, Namespace::Index(0));
        let a = parse("nsu=urn:plant:line1;s=Motor;1.Speed").unwrap();
        assert_eq!(a.namespace, Namespace::Uri("urn:plant:line1".into()));
        // The identifier may itself hold ';'.
        assert_eq!(a.identifier, Identifier::String("Motor;1.Speed".into()));
        let a = parse("nsu=urn:a%3bb;i=5").unwrap();
        assert_eq!(a.namespace, Namespace::Uri("urn:a;b".into()));
        assert!(parse("ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63").is_ok());
        assert!(parse("ns=1;b=AQID").is_ok());
    }

    #[test]
    fn malformed_node_ids_say_what_is_wrong() {
        for (text, says) in [
            ("ns=2;x=1", "expected i=<number>, s=<string>"),
            ("Line1.Temperature", "is not an identifier"),
            ("ns=70000;i=1", "from 0 to 65535"),
            ("ns=two;i=1", "from 0 to 65535"),
            ("ns=2", "must be followed by ;"),
            ("ns=2;i=-1", "whole number from 0 to 4294967295"),
            ("ns=2;s=", "needs a string identifier"),
            ("nsu=;s=A", "needs a namespace URI"),
            ("nsu=urn:x", "must be followed by ;"),
            ("ns=1;g=nope", "not a GUID"),
            ("ns=1;b=!!", "not base64"),
            ("", "is not an identifier"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
