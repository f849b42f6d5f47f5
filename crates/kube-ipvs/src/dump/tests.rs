#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;

fn parse(text: &str) -> ClusterDump {
    let mut d = ClusterDump::default();
    d.parse(text, "t.yaml").unwrap();
    d
}

const SVC: &str = "{kind: Service, apiVersion: v1, metadata: {namespace: d, name: web}, \
                   spec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}}";

#[test]
fn a_yaml_file_starting_with_a_brace_is_yaml() {
    let d = parse(SVC);
    assert_eq!(d.services.len(), 1, "{:?}", d.bad);
    // Real JSON still takes the JSON path, several values concatenated too.
    let json = r#"{"kind":"Service","apiVersion":"v1","metadata":{"namespace":"d","name":"a"}}
                  {"kind":"Service","apiVersion":"v1","metadata":{"namespace":"d","name":"b"}}"#;
    assert_eq!(parse(json).services.len(), 2);
    // Neither: both parsers' words.
    let e = ClusterDump::default()
        .parse("{kind: [", "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("neither JSON") && e.contains("nor YAML"), "{e}");
}

#[test]
fn only_list_kinds_are_unpacked() {
    let d = parse(
        "kind: PodList\nitems:\n- {kind: Service, metadata: {namespace: d, name: x}}\n---\n\
         kind: ServiceList\napiVersion: v1\nitems:\n- {metadata: {namespace: d, name: y1}, spec: {clusterIP: 10.96.0.1}}\n",
    );
    assert_eq!(d.ignored.get("PodList"), Some(&1));
    let names: Vec<_> = d
        .services
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["y1"], "a PodList's items are not Services");
}

#[test]
fn items_before_kind_as_kubectl_prints_them() {
    // kubectl sorts keys: `items` comes before `kind`; items without a kind wait for it.
    let d = parse(
        "apiVersion: v1\nitems:\n- {apiVersion: v1, kind: Service, metadata: {namespace: d, name: a}}\n\
         - {metadata: {namespace: d, name: b}}\nkind: ServiceList\nmetadata: {resourceVersion: \"\"}\n",
    );
    assert_eq!(d.services.len(), 2, "{:?}", d.bad);
}

#[test]
fn objects_without_kind_and_lists_without_a_sequence_are_reported() {
    let d = parse(
        "metadata: {namespace: d, name: nokind}\n---\nkind: List\nitems: {a: 1}\n---\n\
         kind: List\nitems:\n- {metadata: {name: x}}\n- 7\n---\n42\n",
    );
    let msgs: Vec<String> = d
        .bad
        .iter()
        .map(|b| format!("{}|{}|{}", b.kind, b.name, b.message))
        .collect();
    assert_eq!(
        msgs,
        [
            "|d/nokind|no kind: neither the object nor a List around it names one",
            "List||items: expected a sequence, found a mapping",
            "|x|no kind: neither the object nor a List around it names one",
            "||not an object: a number",
            "||document is a number, not an object",
        ]
    );
}

#[test]
fn a_type_error_names_the_field_and_the_object() {
    let d = parse(
        "kind: Service\napiVersion: v1\nmetadata: {namespace: d, name: web}\n\
         spec: {clusterIP: 10.96.0.10, ports: [{port: \"80\"}]}\n---\n\
         kind: EndpointSlice\napiVersion: discovery.k8s.io/v1\nmetadata: {namespace: d, name: web-1}\n\
         addressType: IPv4\nendpoints: [null]\n",
    );
    assert!(d.services.is_empty() && d.slices.is_empty());
    assert_eq!(d.bad.len(), 2);
    assert!(
        d.bad[0]
            .message
            .starts_with("spec.ports[0].port: invalid type: string \"80\""),
        "{}",
        d.bad[0].message
    );
    assert_eq!(
        d.bad[0].object,
        Some(ObjectRef {
            kind: ObjectKind::Service,
            namespace: "d".into(),
            name: "web".into()
        })
    );
    assert!(
        d.bad[1]
            .message
            .starts_with("endpoints[0]: invalid type: null"),
        "{}",
        d.bad[1].message
    );
}

#[test]
fn a_syntax_error_adds_nothing() {
    let mut d = ClusterDump::default();
    let text = format!("{SVC}\n---\nkind: Service\nmetadata: [\n");
    assert!(d.parse(&text, "t.yaml").is_err());
    assert!(d.services.is_empty(), "the first document was not kept");
}

/// "Billion laughs": nine levels of nine aliases each would expand to 387 million nodes.
#[test]
fn an_alias_bomb_is_refused_quickly() {
    let mut text = String::from("a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let e = ClusterDump::default()
        .parse(&text, "bomb.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("bomb.yaml"), "{e}");
}
