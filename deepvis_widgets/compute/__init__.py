"""Pure torch / numpy computations. Never imports ipywidgets, anywidget or bokeh."""
