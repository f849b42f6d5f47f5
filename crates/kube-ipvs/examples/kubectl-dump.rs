//! Writes a cluster dump in the shape `kubectl get svc,endpointslices -A -o yaml|json` prints,
//! for measuring `plan -f` and `run --source file:` on clusters of any size:
//!
//! ```sh
//! cargo run --release -p kube-ipvs --example kubectl-dump -- 50000 4 yaml > /tmp/50k.yaml
//! ```
//! Arguments: Services, endpoints per Service, `yaml` or `json`.
#![allow(clippy::expect_used)]

#[path = "../tests/common/kubectl_dump.rs"]
mod kubectl_dump;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u32| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let format = match args.get(2).map(String::as_str) {
        None | Some("yaml") => kubectl_dump::Format::Yaml,
        Some("json") => kubectl_dump::Format::Json,
        Some(other) => panic!("format {other:?}: yaml or json"),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    kubectl_dump::write(&mut out, num(0, 50_000), num(1, 4), format).expect("writing the dump");
}
