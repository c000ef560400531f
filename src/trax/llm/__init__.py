"""LLM enhancement (pipeline v2): guarded edits from an OpenAI-compatible chat model.

- ``client``: the chat client (JSON mode, retries, deadlines, one-line errors);
- ``prompt``: the fixed system prompt and the fenced transcript chunk;
- ``edits``: the guardrails that decide which proposed edits apply;
- ``cost``: token prices and the per-transcript budget;
- ``stage``: ``EnhanceStage``, the transcript stage that ties them together;
- ``upgrade``: ``trax enhance``, stored v1 transcripts to v2 without re-transcribing.

Nothing is imported here: ``trax --help`` must not pay for httpx.
"""
