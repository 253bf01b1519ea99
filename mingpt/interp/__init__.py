"""
Looking inside (a room below the core): hook points with TransformerLens' names, and the tools built on them.

    hook_points.py      the named places in the forward pass where a function may read or replace an activation
    hooks.py            attaching functions to them: model.hooks(), run_with_hooks, run_with_cache
    activation_cache.py ActivationCache: a forward pass's activations, read as TL reads them (residual stream, ...)
    neuron_results.py   the stream split into every head, every MLP neuron and the biases (TL's full decomposition)
    patching.py         activation patching (TL's get_act_patch_* functions), batched
    prefix_cache.py     the corrupted run's keys and values, reused by each batched patched pass
    attribution.py      attribution patching: the patching grids estimated from one backward pass
    circuits.py         weights as circuits: W_Q, W_O, ..., factored QK/OV matrices, copying and composition scores
    probe.py            named summaries: Probe, the logit lens, top-k next tokens
    tl_methods.py       TL's other model methods on a GPT: to_tokens/to_str_tokens, add_hook/reset_hooks, ...
    head_inputs.py      TL's per-head inputs (hook_q_input, hook_k_input, ..., hook_mlp_in), behind its switches
    attention_view.py   attention patterns seen: a self-contained HTML viewer and a matplotlib figure
    attention_page.py   the viewer page's CSS and JavaScript, written into every view

Nothing here imports the model: the tools work on any module with GPT's hook points, which is why the model can
offer them as one-line methods (``model.run_with_cache``, ``model.W_Q``).
"""
