"""The diffill language server: inline completion, the completion-list fallback, code actions
(lsp_server/code_actions.py), settings, model loading with progress, and the `diffill/status` /
`diffill.accepted` contract (shapes in lsp_server/status.py).

`DiffillServer` holds the state (settings, the completer, the model thread, the cache); the
handlers below only read the document, build the context with a plain function, ask the
server for texts and convert them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from engine.completer import AsyncCompleter, Completer, CompletionRequest, CompletionResult
from engine.errors import BackendError, DiffillError
from lsp_server import code_actions, completion, convert, failures, text_sync
from lsp_server.cache import CompletionCache
from lsp_server.config import Settings, settings_from_json
from lsp_server.context import WindowPlanner
from lsp_server.documents import checked_document, cursor_offset
from lsp_server.engine_host import EngineHost, EngineSource, open_engines
from lsp_server.failures import UnexpectedFailures
from lsp_server.guard import lsp_errors
from lsp_server.model_watch import ModelFolderWatcher, model_folder
from lsp_server.prepare import Preparer
from lsp_server.protocol import DiffillProtocol
from lsp_server.scheduler import IsCancelled, ModelWorker, NetworkCalls
from lsp_server.sources import MAX_SOURCE_CHARS, Sources
from lsp_server.status import (
    ACCEPTED_COMMAND,
    DEBUG_DOCUMENT_REQUEST,
    STATUS_REQUEST,
    BackendHealth,
    Stats,
)
from lsp_server.watcher import Watcher

VERSION = "0.1.0"
KEPT = "; the previous model keeps serving"


class DiffillServer(LanguageServer):
    def __init__(self) -> None:
        # pygls reads stdin on this pool, one blocking read at a time; its default size
        # (cores + 4) lets a submit that races a finishing read start another thread now
        # and then, which a days-long session sees as thread growth.
        super().__init__("diffill", VERSION, protocol_cls=DiffillProtocol, max_workers=1)
        self.settings = Settings()
        self.engine = EngineHost()
        self.worker = ModelWorker()
        self.network = NetworkCalls()  # online backends' requests
        self.health = BackendHealth()
        self.preparer = Preparer(self.worker, on_error=self.log)
        self.cache = CompletionCache()
        self.stats = Stats()
        self.failures = UnexpectedFailures()
        self.planner: WindowPlanner | None = None
        self.sources = Sources()  # other files, for chunks in the context
        self.watcher: Watcher | None = None
        self.last_picked: tuple[str, ...] = ()  # other files' chunks in the last request
        self.overrides: dict[str, object] = {}  # from the command line, over client settings
        self.model_watch: ModelFolderWatcher | None = None
        self._loading: asyncio.Task | None = None
        self._loaded = asyncio.Event()  # set when the current load ends, ready or failed

    def log(self, message: str, error: bool = False) -> None:
        kind = types.MessageType.Error if error else types.MessageType.Log
        self.window_log_message(types.LogMessageParams(type=kind, message=f"diffill: {message}"))

    def unexpected(self, exc: Exception) -> None:
        """A bug inside the engine: its traceback in the log the first time, then a count."""
        trace = self.failures.record(exc)
        if trace is not None:
            self.log(f"unexpected failure, request answered empty:\n{trace}", error=True)

    def warn(self, message: str) -> None:
        self.log(message)
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=f"diffill: {message}")
        )

    def apply_settings(self, data: object) -> None:
        """Settings from the client (both paths), command-line overrides on top."""
        settings, issues = settings_from_json(data)
        model = dataclasses.replace(settings.model, **self.overrides)
        self.settings = dataclasses.replace(settings, model=model)
        self.cache = CompletionCache()  # its texts were made under the old settings
        for issue in issues:
            self.warn(f"invalid setting {issue}; using the default")
        if self.engine.source != EngineSource.of(self.settings) and self._loading is not None:
            self.start_loading()

    def start_loading(self) -> None:
        """Load the completer on a loader thread. At first, automatic requests answer empty
        meanwhile and invoked ones wait (`ready_for`); on a reload the old completer answers
        until the new one is ready, and the swap happens between requests (`run_engine` takes
        the completer once per request)."""
        if self._loading is not None:
            self._loading.cancel()
        source = EngineSource.of(self.settings)
        if self.engine.completer is None:
            self.engine.loading(source)
            self._loaded = asyncio.Event()
        self.engine.source = source
        self._loading = asyncio.ensure_future(self._load(source, self._loaded))

    async def _load(self, source: EngineSource, loaded: asyncio.Event) -> None:
        progress = await self._begin_progress(f"loading {source.label}")
        try:
            completer, fallback = await asyncio.to_thread(open_engines, source)
            previous = self.engine.completer
            self.engine.ready(completer, fallback)
            self.planner = WindowPlanner(completer.count_tokens, self.sources)
            self.cache = CompletionCache()
            self.health = BackendHealth()
            self.log(f"model ready: {completer.describe()}")
            if isinstance(previous, AsyncCompleter) and previous is not completer:
                await previous.aclose()  # its pooled connections
        except Exception as exc:  # the boundary: any load failure is a reason, not a dead server
            reason = (str(exc) or type(exc).__name__).splitlines()[0]
            if self.engine.failed(reason):
                kept = self.engine.completer is not None
                self.warn(f"cannot load the {'new ' if kept else ''}model: {reason}" + KEPT * kept)
        finally:
            loaded.set()
            self._end_progress(progress, self.engine.error or "model ready")
        self.sync_model_watch()  # not after a cancel: a newer load, or `close`, follows

    def sync_model_watch(self) -> None:
        """Watch the folder of the model asked for (when it is one), for new weights."""
        source = self.engine.source
        local = not source.backend.online or source.backend.fallback == "embedded"
        folder = model_folder(source.path) if local else None
        if self.model_watch is not None and self.model_watch.folder != folder:
            self.model_watch.stop()
            self.model_watch = None
        if self.model_watch is None and folder is not None:
            loop = asyncio.get_running_loop()
            self.model_watch = ModelFolderWatcher(
                folder,
                changed=lambda: loop.call_soon_threadsafe(self.start_loading),
                report=lambda message: loop.call_soon_threadsafe(self.log, message, True),
            )
            self.model_watch.start()

    async def _begin_progress(self, message: str) -> str | None:
        capable = (
            self.client_capabilities.window and self.client_capabilities.window.work_done_progress
        )
        if not capable:
            return None
        token = f"diffill-load-{uuid.uuid4()}"
        await self.work_done_progress.create_async(token)
        self.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title="diffill", message=message)
        )
        return token

    def _end_progress(self, token: str | None, message: str) -> None:
        if token is not None:
            self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))

    def document(self, uri: str):
        """The document a request is about: as it was when the request arrived, if it is one."""
        found = self.protocol.take_snapshot(self.protocol.msg_id)
        found = found or self.workspace.text_documents.get(uri)
        return checked_document(found, uri, self.settings.max_file_bytes)

    def shows_inline(self) -> bool:
        """The client renders inline completions, so the completion list stays empty (the
        same suggestion would otherwise show twice, in the popup and as ghost text)."""
        text = self.client_capabilities.text_document
        return bool(text and text.inline_completion is not None)

    def usable_for(self, document) -> bool:
        """The model is loaded and completion is enabled for this document's language."""
        return self.engine.completer is not None and self.settings.enabled_for(
            document.language_id or ""
        )

    async def ready_for(self, document, invoked: bool) -> bool:
        """`usable_for`, after waiting up to `loadWaitMs` for a model still loading when the
        user asked explicitly: they wait for an answer, while typing moves on anyway."""
        if invoked and self.engine.state == "loading":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._until_loaded(), self.settings.load_wait_ms / 1000)
        return self.usable_for(document)

    async def _until_loaded(self) -> None:
        while self.engine.state == "loading":  # a reload replaces the event: wait on the new one
            await self._loaded.wait()

    async def texts(self, context: completion.CursorContext, count: int) -> tuple[str, ...]:
        """Suggestions for a context: from the cache, or from the model on its thread."""
        started = time.perf_counter()
        self.preparer.cancel(context.uri)
        window = context.window
        self.last_picked = tuple(chunk.where for chunk in window.related.chunks)
        cached = self.cache.get(window.model_prefix, window.suffix)
        if cached is not None and (len(cached) >= count or count == 1):
            texts, timings = completion.shown_texts(cached, context), None
        else:
            texts, timings = await self._run_model(context, count)
            self.cache.put(window.model_prefix, window.suffix, texts)
        self.stats.record((time.perf_counter() - started) * 1000, timings)
        return texts[:count]

    async def _run_model(self, context: completion.CursorContext, count: int):
        request = completion.engine_request(context, self.settings, count)
        result = await self.run_engine(context.uri, request)
        return completion.result_texts(result, context), result.timings

    async def run_engine(self, key: str, request: CompletionRequest) -> CompletionResult:
        """`request` on the configured backend, a newer call for `key` cancelling it. An
        online backend's failure is logged once and answered by the embedded fallback when
        there is one; without one it propagates and the handler answers empty."""
        completer, fallback = self.engine.completer, self.engine.fallback  # no swap mid-request
        if completer is None:
            raise DiffillError(f"the model is not ready ({self.engine.error or self.engine.state})")
        if not isinstance(completer, AsyncCompleter):
            return await self._on_model_thread(key, completer, request)
        try:
            result = await self.network.run_latest(key, completer.complete_async(request))
        except BackendError as exc:
            self._backend_failed(exc, fallback is not None)
            if fallback is None:
                raise
            self.health.fallbacks += 1
            return await self._on_model_thread(key, fallback, request)
        self.health.ok()
        return result

    async def _on_model_thread(self, key: str, completer: Completer, request: CompletionRequest):
        def run(cancelled: IsCancelled) -> CompletionResult:
            failures.inject(request.prefix)
            return completer.complete(request, cancelled)

        return await self.worker.run_latest(key, run)

    def _backend_failed(self, exc: BackendError, falls_back: bool) -> None:
        """One log line per new reason; a refused key is also shown to the user, once."""
        if not self.health.failed(str(exc)):
            return
        answer = "the embedded model answers" if falls_back else "no completions"
        self.log(f"backend failed: {exc}; {answer}", error=True)
        if exc.auth:
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=f"diffill: {exc}")
            )

    async def filled_action(self, document, offer: code_actions.Offer) -> types.CodeAction:
        """The action with its edit, from the model on its thread; a newer code-action request
        for the document cancels it, completions do not."""
        completer = self.engine.completer
        if completer is None:
            raise DiffillError(f"the model is not ready ({self.engine.error or self.engine.state})")
        gap = code_actions.gap(document, offer, completer.count_tokens, self.settings)
        request = code_actions.engine_request(gap, self.settings)
        result = await self.run_engine(f"{offer.uri} code action", request)
        return code_actions.action(document, offer, code_actions.replacement(result.text, gap))

    def prepare_job(self, uri: str, edit_offset: int):
        """The pre-encoding for the window at `edit_offset`, built when the debounce fires."""

        def build():
            try:
                document = self.document(uri)
            except DiffillError:
                return None  # closed, oversized or binary: the request will say why
            if not self.usable_for(document) or edit_offset > len(document.source):
                return None
            language = document.language_id or ""
            window = completion.plan_window(
                self.planner, uri, document.source, edit_offset, self.settings, language
            )
            return lambda: self.engine.completer.prepare(window.model_prefix, window.suffix)

        return build

    def sync_watcher(self, restart: bool = False) -> None:
        """Watch the workspace folders for changed files while other files are wanted;
        `restart` when the folders changed."""
        self.sources.roots = workspace_roots(self)  # for the labels, even without watching
        c = self.settings.context
        wanted = c.other_files > 0 and c.watch_workspace
        if self.watcher is not None and (restart or not wanted):
            self.watcher.stop()
            self.watcher = None
        if self.watcher is None and wanted:
            self._start_watcher()

    def _start_watcher(self) -> None:
        loop = asyncio.get_running_loop()

        def deliver(uri: str, text: str | None) -> None:
            loop.call_soon_threadsafe(self.sources.changed_on_disk, uri, text)

        def report(message: str, error: bool) -> None:
            loop.call_soon_threadsafe(self.log, message, error)

        cap = min(self.settings.max_file_bytes, MAX_SOURCE_CHARS)
        self.watcher = Watcher(list(self.sources.roots), cap, deliver, report)
        self.watcher.start()

    def close(self) -> None:
        """Stop loading, watching and the model thread: nothing may write after `exit`."""
        if self._loading is not None:
            self._loading.cancel()
        for watcher in (self.watcher, self.model_watch):
            if watcher is not None:
                watcher.stop()
        self.watcher = self.model_watch = None
        self.worker.close()

    def status(self) -> dict[str, object]:
        return {
            "state": self.engine.state,
            "error": self.engine.error,
            "loads": self.engine.loads,
            "loadFailures": self.engine.load_failures,
            "watchingModel": self.model_watch is not None and self.model_watch.ready.is_set(),
            "model": self.engine.describe(),
            "mode": self.settings.model.mode,
            "runtime": self.settings.model.runtime,
            "enabled": self.settings.enable,
            **self.stats.as_json(),
            "pending": self.worker.in_flight + self.network.in_flight + self.preparer.pending,
            "tasks": len(asyncio.all_tasks()),
            "handling": self.protocol.in_flight,
            "stoppedRuns": self.worker.stopped + self.network.stopped,
            "unexpectedFailures": self.failures.count,
            "otherFiles": {"sources": self.sources.labels(), "picked": list(self.last_picked)},
            "backend": self.health.as_json(self.settings.backend.kind, self.settings.is_offline),
        }


def workspace_roots(ls: LanguageServer) -> tuple[str, ...]:
    """Paths of the workspace folders, or of the root URI when the client sent no folders."""
    uris = list(ls.workspace.folders) or [ls.workspace.root_uri]
    paths = (to_fs_path(uri) for uri in uris if uri and uri.startswith("file:"))
    return tuple(path for path in paths if path)


server = DiffillServer()


@server.feature(types.INITIALIZE)
def initialize(ls: DiffillServer, params: types.InitializeParams) -> None:
    text_sync.adopt(ls.workspace)
    ls.apply_settings(params.initialization_options)


@server.feature(types.INITIALIZED)
def initialized(ls: DiffillServer, params: types.InitializedParams) -> None:
    ls.start_loading()
    ls.sync_watcher()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: DiffillServer, params: types.DidChangeConfigurationParams):
    if params.settings is not None:  # null: the client expects a pull, which we do not need
        ls.apply_settings(params.settings)
        ls.sync_watcher()


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_workspace_folders(ls: DiffillServer, params: types.DidChangeWorkspaceFoldersParams):
    ls.sync_watcher(restart=True)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: DiffillServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.sources.opened(params.text_document.uri, params.text_document.text)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: DiffillServer, params: types.DidChangeTextDocumentParams) -> None:
    document = ls.workspace.text_documents.get(params.text_document.uri)
    change = params.content_changes[-1] if params.content_changes else None
    if document is None:
        return
    ls.sources.update(document.uri, document.source)
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return
    try:
        edit_end = cursor_offset(document, change.range.start) + len(change.text)
    except DiffillError:
        return
    delay = ls.settings.context.prepare_delay_ms / 1000
    ls.preparer.schedule(document.uri, ls.prepare_job(document.uri, edit_end), delay)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: DiffillServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.preparer.cancel(params.text_document.uri)
    ls.sources.closed(params.text_document.uri)
    if ls.planner is not None:
        ls.planner.forget(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
@lsp_errors(empty=lambda: types.InlineCompletionList(items=[]))
async def inline_completion(ls: DiffillServer, params: types.InlineCompletionParams):
    document = ls.document(params.text_document.uri)
    selected = params.context.selected_completion_info
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    if not await ls.ready_for(document, invoked):
        return types.InlineCompletionList(items=[])
    context = completion.cursor_context(
        document, params.position, ls.planner, ls.settings, selected
    )
    texts = await ls.texts(context, ls.settings.alternatives if invoked else 1)
    return convert.inline_items(texts, document.uri, params.position, selected)


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())
@lsp_errors(empty=lambda: types.CompletionList(is_incomplete=True, items=[]))
async def completion_fallback(ls: DiffillServer, params: types.CompletionParams):
    document = ls.document(params.text_document.uri)
    invoked = params.context and params.context.trigger_kind == types.CompletionTriggerKind.Invoked
    if ls.shows_inline() or not await ls.ready_for(document, bool(invoked)):
        return types.CompletionList(is_incomplete=True, items=[])
    context = completion.cursor_context(document, params.position, ls.planner, ls.settings)
    texts = await ls.texts(context, 1)
    return convert.completion_list(texts, document.uri, params.position)


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION, code_actions.OPTIONS)
@lsp_errors(empty=list)
async def code_action(ls: DiffillServer, params: types.CodeActionParams):
    document = ls.document(params.text_document.uri)
    offers = code_actions.offers(document, params.range, params.context.only)
    if not offers or not ls.usable_for(document):
        return []
    if code_actions.resolves_lazily(ls.client_capabilities):
        return [code_actions.action(document, offer) for offer in offers]
    if params.context.trigger_kind == types.CodeActionTriggerKind.Automatic:
        return []  # a client without resolve would run the model on every cursor move
    actions = [await ls.filled_action(document, offer) for offer in offers]
    return [action for action in actions if action.edit is not None]


@server.feature(types.CODE_ACTION_RESOLVE)
@lsp_errors(empty=code_actions.no_edit)
async def resolve_code_action(ls: DiffillServer, params: types.CodeAction):
    offer = code_actions.offer_from(params.data)
    document = ls.document(offer.uri)
    code_actions.check_current(document, offer)
    action = await ls.filled_action(document, offer)
    if action.edit is None:
        ls.warn(f"{action.title}: the model proposed no change")
        action.edit = types.WorkspaceEdit(changes={})
    return action


@server.command(ACCEPTED_COMMAND)
def accepted(ls: DiffillServer, *arguments: object) -> None:
    ls.stats.accepted += 1


@server.feature(STATUS_REQUEST)
async def status(ls: DiffillServer, params: object) -> dict[str, object]:
    """Async so it runs after the requests that arrived before it have started."""
    return ls.status()


@server.feature(DEBUG_DOCUMENT_REQUEST)
def debug_document(ls: DiffillServer, params: object) -> dict[str, object]:
    uri = getattr(params, "uri", None)
    document = ls.workspace.text_documents.get(uri) if isinstance(uri, str) else None
    if document is None:
        raise JsonRpcInvalidParams(f"{DEBUG_DOCUMENT_REQUEST}: no open document {uri!r:.200}")
    return {"uri": document.uri, "version": document.version, "text": document.source}


@server.feature(types.SHUTDOWN)
def shutdown(ls: DiffillServer, params: None) -> None:
    ls.close()


@server.feature(types.EXIT)
def exit_(ls: DiffillServer, params: None) -> None:
    ls.close()  # after shutdown this finds nothing left to stop
