"""
The Resumable tab of a task instance in Airflow's UI (3.1+): a FastAPI app the API server mounts.

Routes, all behind Airflow's auth manager (read: the DAG's task instances; actions: their edit):

* ``GET  /resumable/tab?dag_id&run_id&task_id&map_index``: the page shown in the tab's iframe. It is a
  static shell: it holds no stored value, and its script renders the JSON below as text, never as HTML.
* ``GET  /resumable/static/<file>``: its script and style, shipped in the wheel (no CDN, no build step).
* ``GET  /resumable/api/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state?map_index``:
  what the task instance holds and what a clear does now (``inventory.view``), values masked.
* ``DELETE`` of the same path: delete that state, as ``airflow resumable state delete`` does.
* ``POST /resumable/api/dags/{dag_id}/watermarks/{task_id}/reset?map_index``: reset a watermark, with
  the CLI's refusals (two copies, a change of the mark's type).

The data comes from the same inventory the CLI reads, so the tab and ``state list`` say the same.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel

from airflow.providers.resumable.compat import api_server as compat
from airflow.providers.resumable.compat.airflow import clear_discards_task_state
from airflow.providers.resumable.inventory import state as inventory
from airflow.providers.resumable.inventory import view
from airflow.providers.resumable.inventory import watermarks as watermark_inventory

#: Where the API server mounts the app.
URL_PREFIX = "/resumable"
_STATIC = {"tab.js": "text/javascript", "tab.css": "text/css"}
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
#: The request's user, resolved by Airflow's auth manager (module level: FastAPI reads the annotation by name).
UserDep = Annotated[Any, Depends(compat.authenticated_user())]


class DeleteRequest(BaseModel):
    """A delete must say it was confirmed: a stray request (or a form on another site) deletes nothing."""

    confirm: bool


class ResetRequest(BaseModel):
    #: The new mark (JSON: a number, or a timestamp as text); null deletes the watermark.
    to: Any = None
    #: The watermark's name, for a task with more than one.
    name: str | None = None
    confirm: bool


def _asset(name: str) -> bytes:
    return resources.files("airflow.providers.resumable.plugins").joinpath("ui_assets", name).read_bytes()


def _map_index(text: str | None) -> int:
    """The tab's ``{MAP_INDEX}``: absent, empty or left as the placeholder means not mapped."""
    try:
        return int(text) if text not in (None, "") else -1
    except ValueError:
        return -1


def _session() -> Any:
    from airflow.utils.session import create_session

    return create_session()


def _states(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[inventory.TaskState]:
    filters = inventory.Filters(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)
    return [s for s in inventory.read(session, filters) if s.scope.map_index == map_index]


def _marks(session: Any, dag_id: str, task_id: str, map_index: int, name: str | None = None) -> list[Any]:
    filters = watermark_inventory.WatermarkFilters(dag_id=dag_id, task_id=task_id, map_index=map_index, name=name)
    return watermark_inventory.read(session, filters)


def _view(
    dag_id: str, run_id: str, task_id: str, map_index: int, user: Any, region_index: int | None = None
) -> dict[str, Any]:
    with _session() as session:
        states = _states(session, dag_id, run_id, task_id, map_index)
        ti_state = inventory.task_instance_state(session, dag_id, run_id, task_id, map_index)
        marks = _marks(session, dag_id, task_id, map_index)
        return view.task_instance_view(
            dag_id=dag_id,
            run_id=run_id,
            task_id=task_id,
            map_index=map_index,
            ti_state=ti_state,
            states=states,
            marks=marks,
            native_discards=clear_discards_task_state(),
            redact=compat.display_redactor(),
            can_edit=compat.may_edit(user, dag_id),
            region_index=region_index,
        )


def create_app() -> FastAPI:
    """The app the plugin hands to the API server (``fastapi_apps``); tests mount it on their own."""
    app = FastAPI(
        title="airflow-provider-resumable",
        description="The Resumable tab of a task instance: its stored state, and what a clear will do.",
        docs_url=None,
        redoc_url=None,
    )
    read = [Depends(compat.dag_access("GET"))]
    edit = [Depends(compat.dag_access("PUT"))]
    state_path = "/api/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state"

    @app.get("/tab", dependencies=read, include_in_schema=False)
    def tab() -> Response:
        return Response(_asset("tab.html"), media_type="text/html", headers=_NO_STORE)

    @app.get("/static/{name}", dependencies=[Depends(compat.authenticated_user())], include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _STATIC:
            raise HTTPException(404, f"No such file: {name!r}")
        return Response(_asset(name), media_type=_STATIC[name], headers=_NO_STORE)

    @app.get(state_path, dependencies=read)
    def get_state(
        dag_id: str,
        run_id: str,
        task_id: str,
        user: UserDep,
        map_index: str | None = Query(None),
        region_index: int | None = Query(None),
    ) -> dict[str, Any]:
        return _view(dag_id, run_id, task_id, _map_index(map_index), user, region_index)

    @app.delete(state_path, dependencies=edit)
    def delete_state(
        dag_id: str,
        run_id: str,
        task_id: str,
        request: Annotated[DeleteRequest, Body()],
        map_index: str | None = Query(None),
        region_index: int | None = Query(None),
    ) -> dict[str, Any]:
        if not request.confirm:
            raise HTTPException(400, "Nothing deleted: the request was not confirmed ({'confirm': true}).")
        index = _map_index(map_index)
        with _session() as session:
            states = _states(session, dag_id, run_id, task_id, index)
            if region_index is not None:
                # One Task Loop iteration (Airflow 3.4): the others keep their state.
                states = [s for s in states if s.scope.region_id is not None and s.scope.region_index == region_index]
            if not states:
                raise HTTPException(404, "Nothing deleted: this task instance has no state of this provider.")
            deleted: list[str] = []
            for state in states:
                deleted += inventory.delete(session, state)
        return {"deleted": deleted}

    @app.post("/api/dags/{dag_id}/watermarks/{task_id}/reset", dependencies=edit)
    def reset_watermark(
        dag_id: str, task_id: str, request: Annotated[ResetRequest, Body()], map_index: str | None = Query(None)
    ) -> dict[str, Any]:
        if not request.confirm:
            raise HTTPException(400, "Nothing reset: the request was not confirmed ({'confirm': true}).")
        index = _map_index(map_index)
        with _session() as session:
            marks = _marks(session, dag_id, task_id, index, request.name)
            if not marks:
                raise HTTPException(404, f"No watermark of task {task_id!r} in DAG {dag_id!r}; nothing reset.")
            refusal = watermark_inventory.reset_refusal(marks, request.to)
            if refusal is not None:
                raise HTTPException(409, refusal)
            done = [watermark_inventory.reset(session, mark, request.to) for mark in marks]
        return {"reset": done, "to": json.loads(json.dumps(request.to))}

    return app


def fastapi_apps() -> list[dict[str, Any]]:
    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Resumable"}]


def external_views() -> list[dict[str, Any]]:
    """The tab: Airflow's UI replaces the placeholders with the task instance it shows."""
    href = "/tab?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"
    return [
        {
            "name": "Resumable",
            "href": compat.base_url_path(URL_PREFIX + href),
            "destination": "task_instance",
            "url_route": "resumable",
        }
    ]
