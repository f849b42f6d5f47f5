//! A layer of the kube client that marks a kind fresh ([`Freshness`]) on every successful list or
//! watch response of it and on every chunk of its body, bookmarks included: kube-runtime's
//! watcher consumes bookmarks without telling its caller, and a quiet cluster sends nothing else.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

use super::SourceKind;
use super::freshness::Freshness;

/// The kind a request lists or watches, from the last segment of its path (`/api/v1/services`,
/// `/apis/discovery.k8s.io/v1/endpointslices`, ...): only collections are listed and watched.
fn kind_of<B>(req: &Request<B>) -> Option<SourceKind> {
    if req.method() != Method::GET {
        return None;
    }
    match req.uri().path().rsplit('/').next()? {
        "services" => Some(SourceKind::Services),
        "endpointslices" => Some(SourceKind::EndpointSlices),
        "nodes" => Some(SourceKind::Node),
        "servicecidrs" => Some(SourceKind::ServiceCidrs),
        _ => None,
    }
}

/// Wraps the client's HTTP service in [`Activity`].
#[derive(Clone, Debug)]
pub struct ActivityLayer(pub Freshness);

impl<S> Layer<S> for ActivityLayer {
    type Service = Activity<S>;

    fn layer(&self, inner: S) -> Activity<S> {
        Activity {
            inner,
            freshness: self.0.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Activity<S> {
    inner: S,
    freshness: Freshness,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Activity<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<Observed<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let kind = kind_of(&req);
        let freshness = self.freshness.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            let mark = kind
                .filter(|_| response.status().is_success())
                .map(|k| (k, freshness));
            if let Some((k, f)) = &mark {
                f.touch(*k);
            }
            Ok(response.map(|body| Observed {
                inner: Box::pin(body),
                mark,
            }))
        })
    }
}

/// A response body that marks its kind fresh at each data frame.
pub struct Observed<B> {
    inner: Pin<Box<B>>,
    mark: Option<(SourceKind, Freshness)>,
}

impl<B> std::fmt::Debug for Observed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("kind", &self.mark.as_ref().map(|(k, _)| k))
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if let (Poll::Ready(Some(Ok(_))), Some((kind, f))) = (&polled, &self.mark) {
            f.touch(*kind);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_watches_of_the_watched_kinds_are_recognised() {
        let req = |m: Method, uri: &str| Request::builder().method(m).uri(uri).body(()).unwrap();
        let cases = [
            (
                "/api/v1/services?watch=true&resourceVersion=5",
                Some(SourceKind::Services),
            ),
            (
                "/apis/discovery.k8s.io/v1/endpointslices?labelSelector=x",
                Some(SourceKind::EndpointSlices),
            ),
            (
                "/api/v1/nodes?fieldSelector=metadata.name%3Dn1",
                Some(SourceKind::Node),
            ),
            (
                "/apis/networking.k8s.io/v1/servicecidrs",
                Some(SourceKind::ServiceCidrs),
            ),
            ("/api/v1/namespaces/default/events", None),
            ("/api/v1/namespaces/default/services/web", None),
            ("/version", None),
        ];
        for (uri, want) in cases {
            assert_eq!(kind_of(&req(Method::GET, uri)), want, "{uri}");
        }
        assert_eq!(kind_of(&req(Method::POST, "/api/v1/services")), None);
    }
}
