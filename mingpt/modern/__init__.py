"""
The modern room: the parts of language models after GPT-2, each in a small file, each chosen by a config switch
(mingpt/config.py) and built into the same GPT (model.py), so a student can swap one part at a time and watch
what changes. parts.py is the switchboard; rotary.py, norms.py, mlps.py, attention.py and blocks.py the parts.
"""
