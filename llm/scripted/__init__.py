"""The scripted backend: a deterministic offline model behind the OpenAI Chat Completions API.

``server`` is the HTTP layer, ``completion`` turns a decision into a completion or stream chunks,
``policy`` decides (with ``tools``, ``arguments``, ``facts``, ``answer``, ``text``, ``lexicon``).
"""
