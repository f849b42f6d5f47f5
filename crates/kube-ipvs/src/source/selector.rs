//! The selectors stock kube-proxy watches with, and the same filter applied to file sources.

use std::collections::BTreeMap;

/// Services of another proxy (KEP-2447 `service-proxy-name`) are not ours.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Headless Services (and their slices) have nothing to program.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// kube-proxy's watch selector for Services and EndpointSlices: two `DoesNotExist` requirements
/// (`labels.NewRequirement(.., selection.DoesNotExist, ..)` ANDed), in the sorted form client-go prints.
pub const STOCK_LABEL_SELECTOR: &str =
    "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name";

/// The field selector for the node's own Node.
pub fn node_field_selector(node_name: &str) -> String {
    format!("metadata.name={node_name}")
}

/// Whether labels pass [`STOCK_LABEL_SELECTOR`] (for objects that were not selected by a server).
pub fn passes_stock_selector(labels: Option<&BTreeMap<String, String>>) -> bool {
    labels.is_none_or(|l| {
        !l.contains_key(LABEL_SERVICE_PROXY_NAME) && !l.contains_key(LABEL_HEADLESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_filter() {
        let l = |k: &str| BTreeMap::from([(k.to_owned(), String::new())]);
        assert!(passes_stock_selector(None));
        assert!(passes_stock_selector(Some(&l("app"))));
        assert!(!passes_stock_selector(Some(&l(LABEL_HEADLESS))));
        assert!(!passes_stock_selector(Some(&l(LABEL_SERVICE_PROXY_NAME))));
        assert_eq!(node_field_selector("n1"), "metadata.name=n1");
    }
}
