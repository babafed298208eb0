-- CreateTable
CREATE TABLE "Prediction" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "modelName" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "createdAt" DATETIME NOT NULL,
    "latencyMs" REAL NOT NULL,
    "inputs" JSONB NOT NULL,
    "outputs" JSONB NOT NULL
);

-- CreateIndex
CREATE INDEX "Prediction_modelName_version_id_idx" ON "Prediction"("modelName", "version", "id");

-- CreateIndex
CREATE INDEX "Prediction_createdAt_idx" ON "Prediction"("createdAt");
