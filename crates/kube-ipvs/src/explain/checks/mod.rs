//! The checks: each a pure function of the gathered [`Inputs`] and the planned [`Subject`],
//! returning one [`Check`], in the order a person goes through them.
//!
//! | file | checks |
//! |---|---|
//! | `cluster` | `service`, `accepted`, `endpoints`, `ports`, `reachable`, `selection` |
//! | `kernel` | `ipvs`, `address`, `nodeports`, `ipset`, `spread` |
//! | `node` | `healthcheck`, `conntrack`, `agent` |

mod cluster;
mod kernel;
mod node;

pub use cluster::probe_targets;

use super::inputs::{Inputs, KernelView};
use super::report::Check;
use super::subject::{Conversion, Subject};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::model::Service;

/// What every check reads.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    /// The gathered inputs.
    pub inputs: &'a Inputs,
    /// The Service, planned (absent when not found or the cluster could not be read).
    pub subject: Option<&'a Subject>,
}

impl<'a> Ctx<'a> {
    /// The Service as kube-ipvs programs it, or the check to report when there is none: unknown
    /// when the cluster could not be read, skipped when there is no Service or it is not
    /// programmed (the first checks say why).
    pub fn programmed(&self, id: &'static str) -> Result<(&'a Subject, &'a Service), Check> {
        if let Err(e) = &self.inputs.cluster {
            return Err(Check::unknown(
                id,
                "needs the cluster objects",
                format!("they could not be read: {e}"),
            ));
        }
        let Some(sub) = self.subject else {
            return Err(Check::skip(id, "no Service"));
        };
        match (&sub.conversion, sub.service()) {
            (Conversion::Programmed, Some(svc)) => Ok((sub, svc)),
            _ => Err(Check::skip(id, "the Service is not programmed (see above)")),
        }
    }

    /// [`Ctx::programmed`] and [`Ctx::kernel`] together, for the kernel checks.
    pub fn programmed_in_kernel(
        &self,
        id: &'static str,
    ) -> Result<(&'a Subject, &'a Service, &'a KernelView), Check> {
        let (sub, svc) = self.programmed(id)?;
        Ok((sub, svc, self.kernel(id)?))
    }

    /// The Service's EndpointSlices as read (empty when the cluster could not be read).
    pub fn raw_slices(&self) -> &'a [EndpointSlice] {
        self.inputs
            .cluster
            .as_ref()
            .map(|c| c.slices.as_slice())
            .unwrap_or_default()
    }

    /// The kernel view, or the check to report when it could not be read.
    pub fn kernel(&self, id: &'static str) -> Result<&'a KernelView, Check> {
        self.inputs.kernel.as_ref().map_err(|e| {
            Check::unknown(id, "could not read the kernel", e.clone()).fix(
                "run explain on the node as root (CAP_NET_ADMIN in the host network namespace, \
                 e.g. `kubectl -n kube-system exec` into the kube-ipvs pod), with the ip_vs \
                 module loaded",
            )
        })
    }
}

impl Ctx<'_> {
    /// Whether the conntrack table is full: new connections (explain's own too) are dropped,
    /// which explains probes and agent requests that get no answer.
    pub fn conntrack_full(&self) -> bool {
        matches!(&self.inputs.conntrack, Ok(Some(v)) if v.max > 0 && v.count >= v.max)
    }
}

/// Why connections from this node may go unanswered, when the conntrack table is full.
const DROPPED_BY_CONNTRACK: &str = "the conntrack table is full (see conntrack): new \
     connections, explain's own included, are dropped";

/// Every check, in order.
pub fn all(ctx: &Ctx<'_>) -> Vec<Check> {
    vec![
        cluster::service(ctx),
        cluster::accepted(ctx),
        cluster::endpoints(ctx),
        cluster::ports(ctx),
        cluster::reachable(ctx),
        cluster::selection(ctx),
        kernel::ipvs(ctx),
        kernel::address(ctx),
        kernel::nodeports(ctx),
        node::healthcheck(ctx),
        kernel::ipset(ctx),
        kernel::spread(ctx),
        node::conntrack(ctx),
        node::agent(ctx),
    ]
}

/// The largest value of a metric over its label sets (`name` or `name{...}`), from `/metrics`.
fn metric(m: &std::collections::BTreeMap<String, f64>, name: &str) -> Option<f64> {
    m.iter()
        .filter(|(k, _)| {
            k.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('{'))
        })
        .map(|(_, v)| *v)
        .reduce(f64::max)
}

/// `a, b, c`.
fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 thing` / `2 things`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;
