//! The text `list` and `status` print: an aligned table like istioctl's, and one block per
//! waypoint with a field per line.

use std::fmt::Write;

use crate::gateway::Cond;
use crate::summary::{ListRow, WaypointStatus};

/// Columns padded to their widest cell, three spaces apart (as `kubectl get`).
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `list`'s table; the NAMESPACE column only across namespaces (`-A`), as istioctl.
pub fn list(rows: &[ListRow], all_namespaces: bool) -> String {
    if rows.is_empty() {
        return "No waypoints found.\n".to_string();
    }
    let mut head = vec!["NAME", "CLASS", "REVISION", "TRAFFIC TYPE", "PROGRAMMED"];
    if all_namespaces {
        head.insert(0, "NAMESPACE");
    }
    let mut t = vec![head.into_iter().map(str::to_string).collect::<Vec<_>>()];
    for r in rows {
        let mut line = vec![
            r.name.clone(),
            r.class.clone(),
            r.revision.clone(),
            r.traffic.clone(),
            r.programmed.clone(),
        ];
        if all_namespaces {
            line.insert(0, r.namespace.clone());
        }
        t.push(line);
    }
    table(&t)
}

fn cond(c: Option<&Cond>, type_: &str) -> String {
    match c {
        None => format!("Unknown (no {type_} condition written)"),
        Some(c) if c.message.is_empty() => format!("{} ({})", c.status, c.reason),
        Some(c) => format!("{} ({}: {})", c.status, c.reason, c.message),
    }
}

/// `label:` then the first item, each further item on its own line under it.
fn field(out: &mut String, label: &str, items: &[String]) {
    let pad = " ".repeat(15);
    let head = format!("  {:<13}", format!("{label}:"));
    match items {
        [] => {
            let _ = writeln!(out, "{head}none");
        }
        [first, rest @ ..] => {
            let _ = writeln!(out, "{head}{first}");
            for i in rest {
                let _ = writeln!(out, "{pad}{i}");
            }
        }
    }
}

/// `status`'s blocks, one per waypoint.
pub fn status(all: &[WaypointStatus]) -> String {
    if all.is_empty() {
        return "No waypoints found.\n".to_string();
    }
    let mut out = String::new();
    for (i, s) in all.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let ready = match &s.programmed {
            _ if s.ready() => "ready",
            Some(_) => "NOT READY",
            None => "readiness unknown",
        };
        let _ = writeln!(out, "waypoint {}: {ready}", s.key());
        let one = |v: String| vec![v];
        field(
            &mut out,
            "class",
            &one(format!(
                "{} (traffic: {}, revision: {})",
                s.class, s.traffic, s.revision
            )),
        );
        field(
            &mut out,
            "programmed",
            &one(cond(s.programmed.as_ref(), "Programmed")),
        );
        field(
            &mut out,
            "accepted",
            &one(cond(s.accepted.as_ref(), "Accepted")),
        );
        field(&mut out, "addresses", &s.addresses);
        field(&mut out, "namespaces", &s.namespaces);
        let services: Vec<String> = s
            .services
            .iter()
            .map(|b| {
                let via = match b.via {
                    crate::binding::Via::Label => "its label",
                    crate::binding::Via::Namespace => "namespace label",
                };
                format!("{}/{} ({via})", b.namespace, b.name)
            })
            .collect();
        field(&mut out, "services", &services);
        let attached = |v: &[crate::attach::Attachment]| -> Vec<String> {
            v.iter()
                .map(|a| format!("{} {}/{} ({})", a.kind.kind(), a.namespace, a.name, a.via))
                .collect()
        };
        field(&mut out, "routes", &attached(&s.routes));
        field(&mut out, "policies", &attached(&s.policies));
        field(&mut out, "certificate", &one(s.certificate.describe()));
        for n in &s.notes {
            field(&mut out, "note", &one(n.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::{BoundService, Via};
    use crate::cert::CertStatus;

    fn row(ns: &str, name: &str, programmed: &str) -> ListRow {
        ListRow {
            namespace: ns.into(),
            name: name.into(),
            class: "waypoint".into(),
            revision: "default".into(),
            traffic: "service".into(),
            programmed: programmed.into(),
        }
    }

    #[test]
    fn list_aligns_columns_and_adds_namespace_across_namespaces() {
        let rows = [
            row("a", "wp", "True"),
            row("bookinfo", "long-name", "False"),
        ];
        assert_eq!(
            list(&rows, false),
            "NAME        CLASS      REVISION   TRAFFIC TYPE   PROGRAMMED\n\
             wp          waypoint   default    service        True\n\
             long-name   waypoint   default    service        False\n"
        );
        assert!(list(&rows, true).starts_with("NAMESPACE   NAME        CLASS"));
        assert_eq!(list(&[], true), "No waypoints found.\n");
    }

    #[test]
    fn status_prints_one_field_per_line_and_lists_under_their_label() {
        let s = WaypointStatus {
            namespace: "a".into(),
            name: "wp".into(),
            class: "waypoint".into(),
            revision: "default".into(),
            traffic: "service".into(),
            programmed: Some(Cond {
                status: "False".into(),
                reason: "Pending".into(),
                message: "Waiting for a ready waypoint pod".into(),
            }),
            accepted: None,
            addresses: vec![],
            namespaces: vec!["a".into()],
            services: vec![
                BoundService {
                    namespace: "a".into(),
                    name: "cart".into(),
                    via: Via::Namespace,
                },
                BoundService {
                    namespace: "b".into(),
                    name: "pay".into(),
                    via: Via::Label,
                },
            ],
            routes: vec![],
            policies: vec![],
            certificate: CertStatus::unknown("no --admin given"),
            notes: vec!["something".into()],
        };
        let text = status(&[s]);
        let want = "waypoint a/wp: NOT READY\n\
                    \x20 class:       waypoint (traffic: service, revision: default)\n\
                    \x20 programmed:  False (Pending: Waiting for a ready waypoint pod)\n\
                    \x20 accepted:    Unknown (no Accepted condition written)\n\
                    \x20 addresses:   none\n\
                    \x20 namespaces:  a\n\
                    \x20 services:    a/cart (namespace label)\n\
                    \x20              b/pay (its label)\n\
                    \x20 routes:      none\n\
                    \x20 policies:    none\n\
                    \x20 certificate: unknown (no --admin given)\n\
                    \x20 note:        something\n";
        assert_eq!(text, want);
    }
}
