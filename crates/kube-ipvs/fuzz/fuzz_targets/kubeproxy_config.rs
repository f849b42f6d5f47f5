//! A `--config` file (a KubeProxyConfiguration in YAML or JSON, or a ConfigMap holding one) ->
//! the configuration and its warnings. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = kube_ipvs::config::file::parse_str(text);
});
