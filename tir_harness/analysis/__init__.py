"""Layer `analysis`: numbers about finished runs, and their renderings.

Owns the statistics (`stats`), the summary of a run (`summary`), the paired comparison and gate
(`compare`), the text renderings (`render`), the plots (`plots`), the page report.html (`html`, with its
vendored `assets/`) and the report files (`report`).  It
reads records only: it may import records, grading and util; never run, engines, sandbox or plugin.
"""
