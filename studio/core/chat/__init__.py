"""Chat: talking to the teacher, the base model and trained students side by side (no Qt, no torch).

    sources.py        ModelSource: the models a column can talk to, and the client that reaches one
    conversations.py  Conversation / Turn / Answer / ColumnSpec and the project's ConversationRepository
    session.py        the messages a column sends, streaming one answer, answers into seeds and samples
    cli_support.py    ``distill-studio chat``

The Chat panel and Evaluate call these; the endpoint is always reached through the OpenAI API,
so the studio's own server, vLLM and a remote teacher are the same to this package.
"""
