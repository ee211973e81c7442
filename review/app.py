"""Builds the Gradio review app from one tab builder per tab; callbacks only call store/ and
the pure view functions in review/views.py, and turn library errors into gr.Error."""
from __future__ import annotations

import gradio as gr

from store import Store, StoreError

from . import views


def build_overview_tab(store: Store) -> None:
    with gr.Tab("Overview"):
        summary = gr.JSON(value=views.store_summary(store), label="Store")
        query = gr.Textbox(label="Search captions", placeholder="words that must all appear")
        table = gr.Dataframe(headers=["id", "caption", "url"], datatype=["number", "str", "str"],
                             interactive=False, wrap=True)

        def search(text: str) -> list[list]:
            try:
                return views.caption_rows(store, text)
            except StoreError as e:
                raise gr.Error(str(e)) from None

        query.submit(search, query, table)
        gr.Button("Refresh counts").click(lambda: views.store_summary(store), None, summary)


def build_app(store: Store) -> gr.Blocks:
    with gr.Blocks(title=f"Verbatim: {store.path.name}") as app:
        gr.Markdown(f"# Verbatim\nStore `{store.path}`")
        build_overview_tab(store)
    return app
