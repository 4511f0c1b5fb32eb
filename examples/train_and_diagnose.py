"""Train on the digits, watch every layer, and let glassgrad say what went right or wrong.

Trains the same 4-hidden-layer network twice: sigmoid with standard-normal weights (the setup
the 2010 paper warns about) and ReLU with He initialization. The Monitor records gradient
norms, update ratios and saturation per layer; diagnose.report turns them into plain words.

    python examples/train_and_diagnose.py [PLOT_DIR]     # needs the digits extra
"""

import sys

import glassgrad as gg
from glassgrad import diagnose

X, y = gg.data.load_digits()
X_tr, X_te, y_tr, y_te = gg.data.train_test_split(X, y, 0.25, seed=0, stratify=y)

for activation, init in (("sigmoid", "normal"), ("relu", "kaiming")):
    model = gg.nn.MLP([64, 64, 64, 64, 64, 10], activation=activation, init=init, seed=0)
    monitor = diagnose.Monitor(every=5)
    history = gg.fit(model, X_tr, y_tr, loss="cross_entropy", optimizer="sgd", lr=0.1,
                     epochs=8, batch_size=64, validation_data=(X_te, y_te),
                     callbacks=[monitor], verbose=0, seed=0)
    acc = history.history["val_accuracy"][-1]
    print(f"\n== {activation} + {init} init: held-out accuracy {acc:.1%}")
    print(diagnose.report(history))
    if len(sys.argv) > 1:
        for path in diagnose.plots.save_all(history, model, X_tr, y_tr,
                                            f"{sys.argv[1]}/{activation}"):
            print("wrote", path)
