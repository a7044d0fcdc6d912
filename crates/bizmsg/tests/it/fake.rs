//! Fakes of the dealers: an axum server on 127.0.0.1 that checks what the references say and
//! records every request.

use axum::Router;
use std::sync::{Arc, Mutex};

/// A running fake; dropped, it stops.
pub struct Fake<S> {
    pub url: String,
    pub state: Arc<Mutex<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for Fake<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: Send + 'static> Fake<S> {
    pub async fn start(state: S, routes: impl FnOnce(Arc<Mutex<S>>) -> Router) -> Self {
        let state = Arc::new(Mutex::new(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = routes(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, task }
    }
}
