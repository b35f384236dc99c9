"""The official `openai` Python package against agora's LLM proxy.

Usage: openai_client.py BASE_URL TOKEN POOR_TOKEN. Prints one JSON object: what
a non-streaming and a streaming call returned with TOKEN, and how a call with
POOR_TOKEN (an execution whose quota cannot fit the call) failed.
"""
import json
import sys

import openai

base_url, token, poor_token = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=2, timeout=30)
messages = [{"role": "user", "content": "Say hello."}]

whole = client.chat.completions.create(model="mock-model", messages=messages)
stream = client.chat.completions.create(model="mock-model", messages=messages, stream=True)
streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

poor = openai.OpenAI(base_url=base_url, api_key=poor_token, max_retries=2, timeout=30)
refusal = None
try:
    poor.chat.completions.create(model="mock-model", messages=messages)
except openai.APIStatusError as e:
    refusal = {"status": e.status_code, "code": e.code, "type": e.type}

print(json.dumps({
    "version": openai.__version__,
    "whole": whole.choices[0].message.content,
    "usage": whole.usage.total_tokens if whole.usage else None,
    "streamed": streamed,
    "refusal": refusal,
}))
