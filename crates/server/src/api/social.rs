//! social endpoints of the System Service (SPEC §11). Not written yet.

use super::state::ApiState;
use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
}
