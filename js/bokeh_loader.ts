// BokehLoader (deepvis_widgets/widgets/bokeh_loader.py). The loader's state
// carries BokehJS for every chart view of the page (js/lib/bokeh.ts evaluates
// it); the model itself is never meant to be displayed, so it shows one line.

interface LoaderModel {
  get(key: "version"): string;
}

export default {
  render({ model, el }: { model: LoaderModel; el: HTMLElement }) {
    const line = document.createElement("div");
    line.className = "dv-bokeh-loader";
    line.textContent = `BokehJS ${model.get("version")}, shared by the deepvis chart views on this page`;
    el.append(line);
    return () => line.remove();
  },
};
